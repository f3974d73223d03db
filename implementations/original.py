"""The seed notebook's im2col conv2d, kept verbatim as the harness's known-buggy canary.

`im2col` and `conv2d_im2col` are copied byte-for-byte from
``shared/seed/000_291b23d1276b2c8e.txt`` (cells 83 and 84). `conv2d` only adapts the
F.conv2d calling convention to the notebook's call, exactly as the notebook made it:
``conv2d_im2col(img.squeeze(0), kernel.squeeze(0), stride, padding)`` on an unbatched,
single-channel image. It repairs nothing: a harness run that does not catch this
implementation is a failed run.
"""

import torch

from harness import declare


def im2col(img, kernel_size, stride=1, padding=0):
    img_padded = torch.nn.functional.pad(img, (padding, padding, padding, padding), mode='constant', value=0)

    H, W = img_padded.shape
    out_h = (H - kernel_size) // stride + 1
    out_w = (W - kernel_size) // stride + 1

    cols = torch.zeros(kernel_size * kernel_size, out_h * out_w, device=img.device)

    col_idx = 0
    for i in range(0, H - kernel_size + 1, stride):
        for j in range(0, W - kernel_size + 1, stride):
            patch = img_padded[i:i+kernel_size, j:j+kernel_size]
            cols[:, col_idx] = patch.flatten()
            col_idx += 1

    return cols


def conv2d_im2col(img, kernel, stride=1, padding=0):
    cols = im2col(img, kernel.shape[1], stride, padding)

    kernel_flat = kernel.view(kernel.shape[0], -1)

    cols_t = cols.T

    out = torch.matmul(cols_t, kernel_flat.view(kernel_flat.shape[0], -1).T)

    return out.view(kernel.shape[0], cols.shape[1]).T


# What the notebook exercised: one unbatched single-channel float32 image, a square kernel,
# stride and padding as plain ints, no bias, no dilation, no groups.
@declare(
    known_buggy=True,
    batched=False,
    max_in_channels=1,
    max_out_channels=1,
    groups=False,
    bias=False,
    dilation=False,
    square_kernels_only=True,
    padding_modes=(),
    arg_forms=("int",),
    dtypes=("float32",),
    layouts=("contiguous",),
)
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    img, kernel = input, weight
    return conv2d_im2col(img.squeeze(0), kernel.squeeze(0), stride=stride, padding=padding)

"""An exception message's template: what changes from case to case abstracted, nothing else."""

from __future__ import annotations

import pytest

from harness.model.template import template


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (
            "shapes (1,2) and (3,2) not aligned: 2 (dim 1) != 3 (dim 0)",
            "shapes (4,1) and (2,1) not aligned: 1 (dim 1) != 2 (dim 0)",
        ),
        ("cannot reshape array of size 0 into shape (0,newaxis)", "cannot reshape array of size 12 into shape (3,4,1)"),
        ("Expected size to be: [1, 1] but got: [1, 2].", "Expected size to be: [2, 3] but got: [2]."),
        ("got torch.Size([1, 2, 3])", "got torch.Size([])"),
        ("a 3x3 kernel", "a 2 x 5 kernel"),
        ("<function f at 0x7f3a9c1e>", "<function f at 0x55d0>"),
        ("off by -1.5e-3", "off by 2"),
    ],
)
def test_messages_that_differ_only_in_numbers_shapes_and_addresses_have_one_template(one: str, other: str) -> None:
    assert template(one) == template(other)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("expected float32, got float64", "expected float32, got float16"),  # a number inside a word is the word
        ("conv2d failed", "conv3d failed"),
        ("shapes (1,2) and (3,2) not aligned", "cannot reshape (1,2) into (3,2)"),
        ("padding 'same'", "padding 'valid'"),
    ],
)
def test_messages_that_differ_in_words_keep_apart(one: str, other: str) -> None:
    assert template(one) != template(other)

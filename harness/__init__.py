"""im2col-harness: differential fuzzing of conv2d implementations against torch.nn.Conv2d."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("im2col-harness")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0+unknown"

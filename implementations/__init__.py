"""The conv2d implementations shipped with im2col-harness, one im2col idea per module.

They are registered as plugins through entry points in ``pyproject.toml``, exactly as a
third-party package registers its own; nothing here is imported by the harness directly.
"""

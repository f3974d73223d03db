"""Real conv2d libraries as plugins: one thin adapter per library, each its own module.

Each converts the harness's NCHW torch tensors to what its library takes, calls the
library's own convolution, and converts the result back, never repairing it; each declares
what its library lacks. They are registered through entry points named after the library,
each naming the extra that installs it (``jax = "harness.adapters.jax_lax:conv2d [jax]"``), so an
adapter whose library is not installed is listed as unavailable with that install command.
Nothing here is imported by the harness directly.
"""

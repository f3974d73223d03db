"""Conv2d implementations that are correct but hostile to the processes that run them.

Not registered. Tests load them by file (``--impl path/to/hostile_workers.py:name``), so
that a worker process or an isolated child can load them again from their source.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from implementations.unfold import conv2d as unfold_conv2d

# Big enough that torch's im2col (``F.unfold``) splits the work over its OpenMP threads.
WIDE = (1, 64, 96, 96)


def two_threads(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """im2col (torch's, ``F.unfold``) on two OpenMP threads for its own call, the thread
    count put back after, as a library tuned for its workload would; a first unfold as big
    as a real workload's, so that torch does split it over the threads. Correct, and
    fork-hostile: in a process forked from one whose OpenMP pool has run, libgomp waits for
    ever for the pool's threads, which were not forked."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        F.unfold(torch.empty(WIDE), (3, 3))
        return unfold_conv2d(input, weight, bias, stride, padding, dilation, groups)
    finally:
        torch.set_num_threads(threads)


def hangs_in_c(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Deadlocks inside C on every call (a pthread mutex locked twice: no signal but SIGKILL
    ends the wait), after leaving a file named for its process in the working directory:
    the test that kills its campaign knows when there is a hung process to outlive it."""
    Path(f"hung-{os.getpid()}").touch()
    mutex = ctypes.create_string_buffer(64)  # zeroed = PTHREAD_MUTEX_INITIALIZER on glibc
    libc = ctypes.CDLL(None)
    libc.pthread_mutex_lock(mutex)
    libc.pthread_mutex_lock(mutex)

"""glibc's malloc thresholds for training on the CPU.

PyTorch takes its CPU tensors straight from ``malloc``. glibc serves a block of 128 KB or
more from a fresh ``mmap`` until such a block is freed; it then raises that threshold to the
freed block's size (at most 32 MB) and the heap's trim threshold to twice it. In a training
step of the chapter's conv net (largest block 12.8 MB) that is not enough: glibc hands
memory back to the system every step and the next step faults it in again, 4,000 to 7,000
page faults (17 to 27 MB) a step, and the zero fill of max-pooling's gradient alone took
2.4 ms of a 26 ms step. :func:`tune_malloc` sets both thresholds once, before the first
training on the CPU, to the highest values glibc's own adjustment gives them (32 and
64 MB): no page faults in the steady state, and a step of 20 ms
(``benchmarks/levers.py``, ``allocator``). The heap then keeps up to 64 MB free at its top
rather than return it.

The setting is process-wide and static from then on (glibc stops adjusting the thresholds
once a program sets one). It is skipped where the C library is not glibc, where the
environment configures glibc's malloc already (``MALLOC_*`` variables or a ``glibc.malloc``
tunable), and where ``SKAE_MALLOC_TUNING=0``.
"""

import ctypes
import os

M_TRIM_THRESHOLD = -1  # mallopt's parameter numbers, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit systems
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD  # what glibc pairs with it
SWITCH = "SKAE_MALLOC_TUNING"

_state = {"done": False, "tuned": False}


def tune_malloc():
    """Set glibc's mmap and trim thresholds for training, once per process.

    Returns
    -------
    tuned : bool
        Whether skae's thresholds are in force (set by this call or an earlier one).
    """
    if not _state["done"]:
        _state["done"] = True
        _state["tuned"] = _wanted() and _set_thresholds()
    return _state["tuned"]


def _wanted():
    if os.environ.get(SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if any(name.startswith("MALLOC_") for name in os.environ):
        return False  # the user configured glibc's malloc: leave it as they set it
    return "glibc.malloc." not in os.environ.get("GLIBC_TUNABLES", "")


def _set_thresholds():
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):
            return False
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process runs on
    except (AttributeError, OSError, TypeError, ValueError):  # not glibc, or no confstr
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # mmap first: the trim threshold must not be left below the new mmap threshold
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))

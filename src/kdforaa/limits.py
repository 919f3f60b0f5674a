"""The bounds on every size a user's file or value declares or implies, in one place.

A number read from a file or a config (a class count in a weights file's metadata, the sizes a zip
declares for its members, a grid's run count, a thread count) is checked against these bounds before
anything is allocated, started or inflated from it, so a hostile or mistaken value is one line
(:class:`~kdforaa.errors.BadInput`, exit 2) instead of a terabyte allocation, a crash in a native
library or minutes of silence. The bounds sit far above any real use.
"""

from __future__ import annotations

from kdforaa.errors import BadInput

#: ``train.threads`` (and ``--threads``): torch's and OpenMP's pools crash or fail far above it
MAX_THREADS = 1024
#: ``data.num_workers``: decoding processes
MAX_WORKERS = 256
#: ``augment.num_ops``: ops drawn per image (RandAugment uses 1-3)
MAX_AUGMENT_OPS = 100
#: runs in one sweep (grid points x seeds): planning checks each one (about 0.5 ms apiece)
MAX_SWEEP_RUNS = 10_000
#: classes a weights file may declare (ImageNet-21k has 21 841)
MAX_CLASSES = 100_000
#: input channels a weights file may declare
MAX_CHANNELS = 64
#: image sides (``H``, ``W``, a student's resolution) a weights file or a config may declare
MAX_SIDE = 8192
#: how far a checkpoint's zip members may inflate beyond the file's own size (torch stores them
#: uncompressed: a ratio near 1), plus a fixed allowance for small files
MAX_INFLATION = 16
INFLATION_ALLOWANCE = 64 << 20
#: members of a checkpoint's zip (torch writes one per tensor storage, plus a few)
MAX_ZIP_MEMBERS = 1_000_000


def check_range(what: str, value: object, low: int, high: int, fix: str) -> int:
    """``value`` as an int when it is one (not a bool) within ``[low, high]``; else BadInput naming
    ``what`` and how to ``fix`` it."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadInput(f"{what} is {value!r}, not a whole number from {low} to {high}: {fix}")
    return value

"""How torch's OpenMP threads wait for each other: briefly spinning, then sleeping, so a busy neighbour
costs a run little speed. Imported by the package before anything imports torch.

Torch on Linux runs its CPU ops on GNU OpenMP (libgomp) threads. Between two pieces of work, and at the
barrier that ends each op, a thread that is done spins (burns its core polling) for ``GOMP_SPINCOUNT``
polls before it sleeps; libgomp's default, 300 000 (about 10 ms on an AMD EPYC), suits a machine
that is ours alone. Next to a busy process it is the wrong choice: the thread that shares its core with
the neighbour only runs in its time slices, and the threads waiting for it spin through theirs instead
of giving the core back, so a 2-thread run on 2 cores falls to about a quarter of its quiet speed.
Sleeping at once (``OMP_WAIT_POLICY=PASSIVE``) recovers most of that but pays a wake-up on every
barrier, about a fifth of the quiet speed for a small model. A short spin keeps the quick hand-overs of
a quiet machine and gives the core back soon when the other thread is not running (measured:
docs/results.md, "Training on a shared CPU: bits and speed").

The wait policy changes only the speed, never the bits: every op splits its work the same way.

libgomp reads these variables once, when it is loaded, which is when torch is imported. So
:func:`prefer_short_spin` sets ``GOMP_SPINCOUNT`` in the environment when neither it nor
``OMP_WAIT_POLICY`` is set, and that reaches this process only if torch was not imported yet (the
``kdforaa`` command, and any program that imports kdforaa before torch); child processes (sweep jobs,
data-loading workers) inherit it either way. A program that imported torch first keeps libgomp's own
policy: the same bits, less speed next to busy neighbours.
"""

from __future__ import annotations

import os
import sys

#: spins before a waiting OpenMP thread sleeps; libgomp's default is 300 000 (measured in results.md)
SPIN_COUNT = 1000


def prefer_short_spin() -> bool:
    """Set ``GOMP_SPINCOUNT`` to :data:`SPIN_COUNT` unless the user chose a wait policy; True when set.

    Whether it takes effect in this process depends on torch not being imported yet (see the module).
    """
    if "GOMP_SPINCOUNT" in os.environ or "OMP_WAIT_POLICY" in os.environ:
        return False
    os.environ["GOMP_SPINCOUNT"] = str(SPIN_COUNT)
    return "torch" not in sys.modules

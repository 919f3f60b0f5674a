"""Progress for people and for logs: bars that redraw in place on a terminal, plain lines elsewhere.

A bar redraws itself with carriage returns, which a log file or a pipe keeps as one endless line. So bars
are drawn only when stdout and stderr are both terminals; otherwise commands print one line per epoch
(or per file, per op) instead: :func:`note` prints only then.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from tqdm import tqdm


def _terminal(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def interactive() -> bool:
    """Whether bars can redraw in place: stdout and stderr are both terminals."""
    return _terminal(sys.stdout) and _terminal(sys.stderr)


def bar(total: float | None, desc: str, enabled: bool = True, **options: Any) -> tqdm:
    """A tqdm bar on stderr, drawn only when ``enabled`` and :func:`interactive` (else a disabled bar,
    whose updates cost nothing)."""
    drawn = enabled and interactive()
    return tqdm(total=total, desc=desc, disable=not drawn, dynamic_ncols=True, **options)


def note(message: str, enabled: bool = True) -> None:
    """One line of progress on stderr where no bar is drawn (the output is not a terminal)."""
    if enabled and not interactive():
        print(message, file=sys.stderr, flush=True)

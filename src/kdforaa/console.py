"""What the command line says on stderr, and how signals end it: one place for both.

Every message a command prints on stderr without ``--debug`` is one line that starts with
``kdforaa: error:`` or ``kdforaa: warning:`` (progress lines of long commands aside, which ``--quiet``
turns off). Python warnings (ours, torch's, Pillow's decompression-bomb warning) go through
:func:`warning_line`, not Python's two-line format with a file path and a source line.

SIGTERM is turned into :class:`~kdforaa.errors.Terminated` (like Ctrl-C into ``KeyboardInterrupt``), so
that whatever a command is doing when it comes, the ``finally`` blocks and
:func:`kdforaa.atomic.replacing` run and no temporary file is left; training installs its own handler
(checkpoint first, then stop) and puts this one back afterwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from types import FrameType
from typing import Any, TextIO

from kdforaa.errors import Terminated

PREFIX = "kdforaa"


def first_line(message: object) -> str:
    """The first non-empty line of ``message`` (an exception's text is often several)."""
    text = str(message)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines:
        return lines[0]
    return type(message).__name__ if isinstance(message, BaseException) else ""


def _without_prefix(text: str) -> str:
    """``kdforaa: x`` -> ``x``: some messages already name the program."""
    return text.removeprefix(f"{PREFIX}: ")


def error_line(message: object) -> str:
    """``kdforaa: error: <first line of message>``."""
    return f"{PREFIX}: error: {_without_prefix(first_line(message))}"


def warning_line(message: object) -> str:
    """``kdforaa: warning: <first line of message>``."""
    return f"{PREFIX}: warning: {_without_prefix(first_line(message))}"


def print_error(message: object) -> None:
    print(error_line(message), file=sys.stderr, flush=True)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    stream = file if file is not None else sys.stderr
    if stream is None:  # no stderr at all (pythonw)
        return
    with contextlib.suppress(OSError, ValueError):
        print(warning_line(message), file=stream, flush=True)


@contextlib.contextmanager
def one_line_warnings(enabled: bool = True) -> Iterator[None]:
    """Inside the block every Python warning prints as one :func:`warning_line` (``--debug`` keeps
    Python's own format, with the file and line that warned)."""
    if not enabled:
        yield
        return
    previous = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        yield
    finally:
        warnings.showwarning = previous


_received: list[int] = []  # the signals that arrived inside signals_as_exceptions, in order


def signal_received() -> int | None:
    """The first signal that arrived inside :func:`signals_as_exceptions`, or None: when library code
    swallowed the exception it raised (an import that catches everything, say) and some other error
    followed, the command still reports the signal, not the error it caused."""
    return _received[0] if _received else None


def _raising(creator: int) -> Any:
    def handler(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != creator:  # a forked worker inherited the handler: die as the signal would
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        _received.append(signum)
        # a second one ends the process at once, as without a handler (in case the first was swallowed)
        signal.signal(signum, signal.SIG_DFL if signum == signal.SIGTERM else signal.default_int_handler)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated(signum)

    return handler


@contextlib.contextmanager
def signals_as_exceptions() -> Iterator[None]:
    """Inside the block SIGTERM raises :class:`~kdforaa.errors.Terminated` in the main thread and
    Ctrl-C ``KeyboardInterrupt``, each remembered (:func:`signal_received`); a signal the parent set to
    be ignored (a background job's SIGINT) stays ignored. The previous handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    handler = _raising(os.getpid())
    previous = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)

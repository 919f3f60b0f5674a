"""Atomic file writes: the one way kdforaa replaces a file (checkpoints, exports, caches, run records).

A file is written under a hidden temporary name in its own folder, flushed to disk, and renamed over
the target in one step, so a reader (or a crash) sees the old file or the complete new one, never half
of one. When the writing fails in any way, including ``KeyboardInterrupt`` and a SIGTERM that
:func:`kdforaa.console.signals_as_exceptions` turned into :class:`~kdforaa.errors.Terminated`, the
temporary file is removed before the exception goes on: no ``.NAME.*.tmp`` is ever left behind.

File modes: ``private=True`` (the default) creates the file ``0600`` like :func:`tempfile.mkstemp`
(the user's work, for the user alone); ``private=False`` lets the umask decide (``0644`` usually),
like a plain ``open(path, "w")``, whatever mode a writer that replaces the file itself (safetensors)
gave it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

TEMP_SUFFIX = ".tmp"


def _create_temporary(target: Path, private: bool) -> Path:
    """A new empty file ``.<target name>.<random>.tmp`` beside ``target`` (never an existing one)."""
    for _ in range(100):
        candidate = target.with_name(f".{target.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise FileExistsError(f"no free temporary name beside {target}")


def _umask_mode() -> int:
    """The mode ``open`` gives a new file under the process's umask (``0o644`` under ``022``)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def sync_folder(folder: Path) -> None:
    """Flush ``folder``'s entries (a rename in it) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows opens no folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _sync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDWR)  # Windows flushes only a handle that may write
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def replacing(
    target: str | Path, *, private: bool = True, keep_previous: str | Path | None = None
) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; when the block ends normally, it becomes ``target``.

    Write the new contents to the yielded path (by name: ``torch.save``, ``safetensors.save_file``,
    a numpy memmap). With ``keep_previous``, the file being replaced is moved there first. On any
    exception the temporary file is removed and ``target`` is untouched.
    """
    target = Path(target)
    partial = _create_temporary(target, private)
    try:
        yield partial
        if not private:  # a writer may have made a file of its own at this path
            os.chmod(partial, _umask_mode())
        _sync_file(partial)
        if keep_previous is not None and target.exists():
            os.replace(target, keep_previous)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    sync_folder(target.parent)


def write_with(
    target: str | Path,
    write: Callable[[IO[bytes]], object],
    *,
    private: bool = True,
    keep_previous: str | Path | None = None,
) -> None:
    """``write(fh)`` fills a binary file handle that atomically becomes ``target`` (see :func:`replacing`)."""
    with replacing(target, private=private, keep_previous=keep_previous) as partial:
        with partial.open("wb") as fh:
            write(fh)


def write_text(target: str | Path, text: str, *, private: bool = False) -> None:
    """``target`` atomically holds ``text`` (UTF-8); by default with the umask's mode like ``open``."""
    write_with(target, lambda fh: fh.write(text.encode()), private=private)

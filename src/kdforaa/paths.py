"""Checks of the paths a user names for output, made before any work starts.

A command that would fail at its very end (after training, after an export's minutes of copying)
because its output cannot be written fails at its start instead, with one
:class:`~kdforaa.errors.BadInput` line: an existing folder where a file is expected, a file where a
folder is expected, a folder nothing can be written in (read-only, ``/proc``, ``/sys``), or a file
name whose extension says nothing about its format.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Collection
from pathlib import Path

from kdforaa.errors import BadInput

#: kernel pseudo-file systems: writing there means something else than writing a file
PSEUDO_FILE_SYSTEMS = (Path("/proc"), Path("/sys"), Path("/dev"))


def _existing_ancestor(path: Path) -> Path:
    """``path`` itself when it exists, else its nearest existing parent."""
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return Path(path.anchor or ".")


def _check_writable_folder(folder: Path, what: str, path: Path) -> None:
    """Creating a file in ``folder`` works (the only test that holds for root, read-only mounts and
    network file systems alike); the probe file is removed at once."""
    if not folder.is_dir():
        raise BadInput(f"{what} {path}: {folder} is not a folder: choose another path")
    try:
        fd, probe = tempfile.mkstemp(prefix=".kdforaa-probe-", dir=folder)
    except OSError as err:
        raise BadInput(
            f"{what} {path}: cannot write in {folder} ({err.strerror}): choose another path"
        ) from None
    os.close(fd)
    os.unlink(probe)


def _refuse_pseudo(path: Path, what: str) -> Path:
    resolved = path.expanduser().resolve()
    for system in PSEUDO_FILE_SYSTEMS:
        if resolved.is_relative_to(system):
            raise BadInput(f"{what} {path} is under {system}, not a place for files: choose another path")
    return resolved


def check_output_file(path: str | Path, what: str, suffixes: Collection[str] = ()) -> Path:
    """``path`` can be written as a file: not a folder or a special file, its folder exists and takes
    files, and (given ``suffixes``, lower case with the dot) its extension is one of them."""
    path = Path(path)
    resolved = _refuse_pseudo(path, what)
    if suffixes and path.suffix.lower() not in suffixes:
        common = [s for s in (".png", ".jpg", ".safetensors") if s in suffixes]
        shown = sorted(suffixes) if len(suffixes) <= 4 else [*common, "..."]
        raise BadInput(f"{what} {path} must end in {', '.join(shown)}: the extension names the format")
    if resolved.is_dir():
        raise BadInput(f"{what} {path} is a folder: give the name of a file in it")
    if resolved.exists() and not resolved.is_file():
        raise BadInput(f"{what} {path} exists and is not a regular file: choose another path")
    if not resolved.parent.exists():
        raise BadInput(f"{what} {path}: folder {path.parent} does not exist: create it first")
    _check_writable_folder(resolved.parent, what, path)
    return path


def check_output_folder(path: str | Path, what: str) -> Path:
    """``path`` is a folder, or can be created as one, and files can be written in it."""
    path = Path(path)
    resolved = _refuse_pseudo(path, what)
    if resolved.exists() and not resolved.is_dir():
        raise BadInput(f"{what} {path} exists and is not a folder: choose another path")
    _check_writable_folder(_existing_ancestor(resolved), what, path)
    return path

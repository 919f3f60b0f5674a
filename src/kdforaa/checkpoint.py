"""Checkpoints: atomic writes (temporary file, fsync, rename) and safe loads (``weights_only=True``)."""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from kdforaa import __version__
from kdforaa.errors import BadInput

MARKER = "kdforaa"


def umask_mode() -> int:
    """The mode a new file gets from ``open`` under the process's umask (``0o644`` under ``022``).

    ``tempfile.mkstemp`` makes ``0600`` files; a file written through one and renamed into place is
    given this mode, so weights are as readable to a team as the configs and summaries beside them.
    """
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def save_checkpoint(state: dict[str, Any], path: str | Path, keep_previous: str | Path | None = None) -> None:
    """Write ``state`` to ``path`` so that a crash leaves either the old file or the new one, never half.

    With ``keep_previous``, the file being replaced is moved there first, so a good older checkpoint
    survives even if the newest one is later found damaged.
    """
    path = Path(path)
    state = {MARKER: __version__, **state}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, umask_mode())
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        if keep_previous is not None and path.exists():
            os.replace(path, keep_previous)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_torch_file(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """What a torch file holds (a kdforaa checkpoint or anyone else's), read with ``weights_only=True``.

    Nothing pickled is ever executed: a file holding objects other than tensors and plain containers is
    refused. A missing, unreadable or truncated file is BadInput too.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"checkpoint {path} does not exist: pass a run folder's last.pt or best.pt")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "GLOBAL" in str(err):  # a pickled object the safe unpickler will not build
            raise BadInput(
                f"checkpoint {path} holds objects other than tensors and plain data; refusing to unpickle it"
            ) from None
        raise BadInput(f"checkpoint {path} is unreadable or truncated (not a torch checkpoint)") from None
    except Exception as err:  # truncated zip, not a torch file, ...
        raise BadInput(f"checkpoint {path} is unreadable or truncated ({type(err).__name__})") from None


def is_kdforaa_checkpoint(state: Any) -> bool:
    """Whether a loaded torch file is a kdforaa checkpoint: a dict with the marker and ``model`` weights."""
    return isinstance(state, dict) and MARKER in state and "model" in state


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a kdforaa checkpoint without ever executing pickled code; anything else is BadInput."""
    state = read_torch_file(path, map_location)
    if not is_kdforaa_checkpoint(state):
        raise BadInput(f"{path} is not a kdforaa checkpoint (no '{MARKER}' marker or 'model' weights)")
    return state

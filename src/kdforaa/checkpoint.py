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


def save_checkpoint(state: dict[str, Any], path: str | Path, keep_previous: str | Path | None = None) -> None:
    """Write ``state`` to ``path`` so that a crash leaves either the old file or the new one, never half.

    With ``keep_previous``, the file being replaced is moved there first, so a good older checkpoint
    survives even if the newest one is later found damaged.
    """
    path = Path(path)
    state = {MARKER: __version__, **state}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
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


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a kdforaa checkpoint without ever executing pickled code; anything else is BadInput."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"checkpoint {path} does not exist: pass a run folder's last.pt or best.pt")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "GLOBAL" in str(err):  # a pickled object the safe unpickler will not build
            raise BadInput(
                f"checkpoint {path} holds objects other than tensors and plain data; refusing to unpickle it"
            ) from None
        raise BadInput(f"checkpoint {path} is unreadable or truncated (not a torch checkpoint)") from None
    except Exception as err:  # truncated zip, not a torch file, ...
        raise BadInput(f"checkpoint {path} is unreadable or truncated ({type(err).__name__})") from None
    if not isinstance(state, dict) or MARKER not in state or "model" not in state:
        raise BadInput(f"{path} is not a kdforaa checkpoint (no '{MARKER}' marker or 'model' weights)")
    return state

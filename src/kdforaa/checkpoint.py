"""Checkpoints: atomic writes (temporary file, fsync, rename) and safe loads (``weights_only=True``)."""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from kdforaa import __version__
from kdforaa.atomic import write_with
from kdforaa.errors import BadInput
from kdforaa.limits import INFLATION_ALLOWANCE, MAX_INFLATION, MAX_ZIP_MEMBERS

MARKER = "kdforaa"


def save_checkpoint(state: dict[str, Any], path: str | Path, keep_previous: str | Path | None = None) -> None:
    """Write ``state`` to ``path`` so that a crash leaves either the old file or the new one, never half.

    With ``keep_previous``, the file being replaced is moved there first, so a good older checkpoint
    survives even if the newest one is later found damaged.
    """
    state = {MARKER: __version__, **state}
    # the umask decides the mode (0644 under 022), as for the configs and summaries beside it
    write_with(path, lambda fh: torch.save(state, fh), private=False, keep_previous=keep_previous)


def _check_declared_sizes(path: Path) -> None:
    """Refuse a torch zip whose members declare more bytes than :data:`~kdforaa.limits.MAX_INFLATION`
    times the file (plus an allowance), before anything is inflated: torch's reader allocates what each
    member declares, so a 1 MB file could otherwise take gigabytes (torch itself stores members
    uncompressed, so its own files inflate by a ratio near 1)."""
    try:
        if not zipfile.is_zipfile(path):
            return  # the legacy format reads no more than the file holds
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (OSError, zipfile.BadZipFile, ValueError):
        return  # torch.load names what is wrong with it
    size = path.stat().st_size
    bound = MAX_INFLATION * size + INFLATION_ALLOWANCE
    declared = sum(member.file_size for member in members)
    if len(members) > MAX_ZIP_MEMBERS or declared > bound:
        raise BadInput(
            f"checkpoint {path} declares {declared:,} bytes in {len(members):,} members, more than a "
            f"{size:,}-byte torch file can hold ({bound:,}): it is damaged or not a checkpoint"
        )


def read_torch_file(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """What a torch file holds (a kdforaa checkpoint or anyone else's), read with ``weights_only=True``.

    Nothing pickled is ever executed: a file holding objects other than tensors and plain containers is
    refused. A missing, unreadable or truncated file is BadInput too.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"checkpoint {path} does not exist: pass a run folder's last.pt or best.pt")
    _check_declared_sizes(path)
    try:
        with warnings.catch_warnings():  # torch's notes on a file's format: the result or refusal says it
            warnings.simplefilter("ignore")
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

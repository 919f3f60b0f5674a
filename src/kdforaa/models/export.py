"""Weights out: a trained model's weights as a ``.safetensors`` file others can load without kdforaa.

The file holds the state dict only (no optimizer, no pickled anything) under the names of the chosen
layout: ours (``kdforaa``: ``build_model(name, ...).load_state_dict`` takes it), or timm's for a
``timm:<name>`` model (no ``model.`` prefix: ``timm.create_model(name, pretrained=True,
pretrained_cfg_overlay=dict(file=...))`` or the timm model's own ``load_state_dict`` takes it). Its
metadata (JSON values) records what is needed to rebuild and feed the model: architecture, class count,
input channels and, when known, the training images' ``[H, W]``, the downsampling of a
resolution-coupled student and the normalisation; kdforaa reads them back, so the file is a teacher
on its own (``teacher.checkpoint: FILE.safetensors``).
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import save_file

from kdforaa import __version__
from kdforaa.atomic import replacing
from kdforaa.config import TIMM_PREFIX
from kdforaa.errors import BadInput
from kdforaa.models.from_checkpoint import TrainedModel
from kdforaa.models.weight_formats import (
    KDFORAA,
    META_ARCHITECTURE,
    META_IN_CHANNELS,
    META_MEAN,
    META_NUM_CLASSES,
    META_RESOLUTION,
    META_STD,
    META_STUDENT_RESOLUTION,
    TIMM,
)

LAYOUTS = ("kdforaa", "timm")


def export_metadata(trained: TrainedModel) -> dict[str, str]:
    """The safetensors metadata of ``trained``: ``format: pt`` (what loaders of torch weights expect)
    and the ``kdforaa.*`` keys, each a JSON value; the unknown ones are left out."""
    facts = {
        META_ARCHITECTURE: trained.name,
        META_NUM_CLASSES: trained.num_classes,
        META_IN_CHANNELS: trained.in_channels,
        META_RESOLUTION: list(trained.resolution) if trained.resolution else None,
        META_STUDENT_RESOLUTION: trained.student_resolution,
        META_MEAN: list(trained.mean) if trained.mean else None,
        META_STD: list(trained.std) if trained.std else None,
    }
    known = {key: json.dumps(value) for key, value in facts.items() if value is not None}
    return {"format": "pt", "kdforaa.version": __version__, **known}


def export_weights(trained: TrainedModel, out: str | Path, layout: str | None = None) -> Path:
    """Write ``trained``'s weights to ``out`` (a ``.safetensors`` path, replaced atomically).

    ``layout``: ``kdforaa`` or ``timm`` (timm's names, for ``timm:<name>`` models only); None picks
    timm's for timm models and ours otherwise. Returns the path written.
    """
    out = Path(out)
    if out.suffix != ".safetensors":
        raise BadInput(f"--out {out} must end in .safetensors (timm and others pick the reader by it)")
    is_timm = trained.name.startswith(TIMM_PREFIX)
    layout = layout or ("timm" if is_timm else "kdforaa")
    if layout not in LAYOUTS:
        raise BadInput(f"--format {layout!r} is not one of {', '.join(LAYOUTS)}")
    if layout == "timm" and not is_timm:
        raise BadInput(
            f"--format timm writes timm's names, and {trained.name!r} is not a timm model: "
            "use --format kdforaa"
        )
    names = TIMM if layout == "timm" else KDFORAA
    # own, contiguous copies: safetensors refuses views and tensors sharing memory
    tensors = {
        names.theirs(key) or key: value.detach().cpu().contiguous().clone()
        for key, value in trained.model.state_dict().items()
    }
    if not out.parent.is_dir():
        raise BadInput(f"--out {out}: folder {out.parent} does not exist")
    with replacing(out) as partial:
        save_file(tensors, partial, metadata=export_metadata(trained))
    return out

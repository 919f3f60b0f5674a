"""Weights out: a trained model's weights in a file others can load without kdforaa.

``--format kdforaa`` (the default) and ``timm`` write a ``.safetensors`` file: the state dict only (no
optimizer, no pickled anything) under our names (``build_model(name, ...).load_state_dict`` takes it)
or timm's for a ``timm:<name>`` model (no ``model.`` prefix: ``timm.create_model(name,
pretrained=True, pretrained_cfg_overlay=dict(file=...))`` or the timm model's own ``load_state_dict``
takes it). Its metadata, plain strings, records what is needed to rebuild and feed the model:
architecture, class count, input channels, the data set and, when known, the training images'
``H,W``, the downsampling of a resolution-coupled student and the normalisation; kdforaa reads them
back, so the file is a teacher on its own (``teacher.checkpoint: FILE.safetensors``) and ``kdforaa
eval FILE`` needs no ``--data``.

``--format repdistiller`` writes what RepDistiller's and mdistiller's training scripts save: a torch
file of ``{"model": state_dict, "epoch": N}`` under their module names (``conv1``, ``layer1.0...``,
``block1.layer.0...``), which their ``model.load_state_dict(torch.load(path)["model"])`` takes; only
tensors and an integer, so ``torch.load(..., weights_only=True)`` reads it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from kdforaa import __version__
from kdforaa.atomic import replacing
from kdforaa.config import TIMM_PREFIX
from kdforaa.errors import BadInput
from kdforaa.models.from_checkpoint import TrainedModel
from kdforaa.models.weight_formats import (
    KDFORAA,
    META_ARCHITECTURE,
    META_DATA,
    META_IN_CHANNELS,
    META_MEAN,
    META_NUM_CLASSES,
    META_RESOLUTION,
    META_STD,
    META_STUDENT_RESOLUTION,
    TIMM,
    Layout,
    layouts_of,
)

LAYOUTS = ("kdforaa", "timm", "repdistiller")


def _plain(value: str | int | tuple[float, ...] | tuple[int, ...]) -> str:
    """A metadata value as a plain string: ``resnet8``, ``10``, ``28,28``, ``0.286``."""
    return ",".join(str(v) for v in value) if isinstance(value, tuple) else str(value)


def export_metadata(trained: TrainedModel) -> dict[str, str]:
    """The safetensors metadata of ``trained``: ``format: pt`` (what loaders of torch weights expect)
    and the ``kdforaa.*`` keys as plain strings (read back by
    :func:`~kdforaa.models.weight_formats.parse_metadata`); the unknown ones are left out."""
    facts = {
        META_ARCHITECTURE: trained.name,
        META_DATA: trained.data,
        META_NUM_CLASSES: trained.num_classes,
        META_IN_CHANNELS: trained.in_channels,
        META_RESOLUTION: trained.resolution,
        META_STUDENT_RESOLUTION: trained.student_resolution,
        META_MEAN: trained.mean,
        META_STD: trained.std,
    }
    known = {key: _plain(value) for key, value in facts.items() if value is not None}
    return {"format": "pt", "kdforaa.version": __version__, **known}


def _layout(trained: TrainedModel, layout: str | None) -> Layout:
    """The names to write ``trained``'s weights under (BadInput for a layout it has none in)."""
    is_timm = trained.name.startswith(TIMM_PREFIX)
    layout = layout or ("timm" if is_timm else "kdforaa")
    if layout not in LAYOUTS:
        raise BadInput(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    if layout == "timm" and not is_timm:
        raise BadInput(
            f"the timm layout writes timm's names, and {trained.name!r} is not a timm model: "
            "use the kdforaa layout"
        )
    if layout == "timm":
        return TIMM
    if layout == "kdforaa":
        return KDFORAA
    theirs = [found for found in layouts_of(trained.model) if found.name == layout]
    if not theirs:
        raise BadInput(
            f"the {layout} layout writes RepDistiller's module names, which exist for the models of its "
            f"zoo (kdforaa models); {trained.name!r} is not one of them: use the kdforaa layout"
        )
    return theirs[0]


def export_weights(trained: TrainedModel, out: str | Path, layout: str | None = None) -> Path:
    """Write ``trained``'s weights to ``out`` (replaced atomically); returns the path written.

    ``layout``: ``kdforaa`` or ``timm`` (timm's names, for ``timm:<name>`` models only) write a
    ``.safetensors`` file; ``repdistiller`` a ``.pth``/``.pt`` torch file in RepDistiller's layout
    (CIFAR ResNets and WRNs). None picks timm's for timm models and ours otherwise.
    """
    out = Path(out)
    names = _layout(trained, layout)
    if names.name == "repdistiller":
        if out.suffix not in (".pth", ".pt"):
            raise BadInput(f"{out} must end in .pth (or .pt): the repdistiller layout writes a torch file")
    elif out.suffix != ".safetensors":
        raise BadInput(f"{out} must end in .safetensors (timm and others pick the reader by it)")
    # own, contiguous copies: safetensors refuses views and tensors sharing memory
    tensors = {
        names.theirs(key) or key: value.detach().cpu().contiguous().clone()
        for key, value in trained.model.state_dict().items()
    }
    if not out.parent.is_dir():
        raise BadInput(f"{out}: folder {out.parent} does not exist")
    with replacing(out, private=False) as partial:  # the umask's mode, like every other file
        if names.name == "repdistiller":  # what their scripts save and load
            torch.save({"model": tensors, "epoch": trained.epoch or 0}, partial)
        else:
            save_file(tensors, partial, metadata=export_metadata(trained))
    return out

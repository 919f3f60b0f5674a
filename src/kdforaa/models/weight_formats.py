"""Weights files from anywhere: what a file is (its format) and how its module names map to ours (its layout).

Formats (``teacher.format``, ``kdforaa eval --format``), told apart by ``auto`` from the bytes and keys:

==============  ==================================================================================
``kdforaa``     a kdforaa run checkpoint (``best.pt``): records architecture, class count, channels
``repdistiller`` a torch dict whose ``model`` entry is the state dict, as RepDistiller and mdistiller
                save their CIFAR teachers (``epoch``, ``optimizer``, ``accuracy`` ... are ignored)
``state_dict``  a torch file holding only a state dict
``safetensors`` a ``.safetensors`` file; ``kdforaa export`` records the architecture in its metadata
==============  ==================================================================================

Torch files are read with ``weights_only=True`` (:func:`kdforaa.checkpoint.read_torch_file`) and
safetensors files hold no code at all. Keys saved from a ``DataParallel``/DDP wrapper lose their
common ``module.`` prefix.

Layouts are the module names inside: ``kdforaa`` (ours), ``repdistiller`` (RepDistiller's and
mdistiller's CIFAR ResNets: ``conv1``, ``bn1``, ``layer1..3.N.{conv1,bn1,conv2,bn2,downsample.0/1}``,
``fc``; their Wide ResNets: ``conv1``, ``block1..3.layer.N.{bn1,conv1,bn2,conv2,convShortcut}``,
``bn1``, ``fc``; its VGGs, MobileNetV2, ShuffleNets and ResNet50: exactly our names, as ours were written with
its names) and ``timm`` (timm's own names: a :class:`TimmClassifier` without its ``model.`` prefix).
The renamed blocks compute the same functions as ours (checked by tests against reference modules
written in the foreign layout), so a layout is only a renaming, given as prefix rules both ways.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import safe_open
from torch import Tensor, nn

from kdforaa.checkpoint import is_kdforaa_checkpoint, read_torch_file
from kdforaa.errors import BadInput
from kdforaa.models.bottleneck_resnet import ResNet50
from kdforaa.models.cifar_resnet import CifarResNet
from kdforaa.models.mobilenetv2 import MobileNetV2
from kdforaa.models.registry import TimmClassifier
from kdforaa.models.shufflenet import ShuffleNetV1, ShuffleNetV2
from kdforaa.models.vgg import VGG
from kdforaa.models.wrn import WideResNet

#: safetensors metadata keys kdforaa writes and reads back; values are plain strings: a name
#: (``resnet8``), an integer (``10``) or comma-separated numbers (``28,28``). Files exported before
#: kdforaa wrote plain strings hold JSON values (``"resnet8"``, ``[28, 28]``), still read.
META_ARCHITECTURE = "kdforaa.architecture"
META_DATA = "kdforaa.data"  # the data set the weights were trained on (a data.name)
META_NUM_CLASSES = "kdforaa.num_classes"
META_IN_CHANNELS = "kdforaa.in_channels"
META_RESOLUTION = "kdforaa.resolution"  # [H, W] of the images the weights were trained on
META_STUDENT_RESOLUTION = "kdforaa.student_resolution"  # N: the model downsamples its input to NxN
META_MEAN = "kdforaa.mean"  # per-channel normalisation the model expects, on the [0, 1] scale
META_STD = "kdforaa.std"

FORMAT_NAMES = {
    "kdforaa": "kdforaa run checkpoint",
    "repdistiller": "RepDistiller/mdistiller checkpoint (weights under 'model')",
    "state_dict": "plain state dict",
    "safetensors": ".safetensors file",
}
_WRAPPER_PREFIX = "module."  # DataParallel / DistributedDataParallel


@dataclass(frozen=True)
class StoredWeights:
    """A weights file as read: tensors under the file's own names, and what the file records.

    ``architecture``, ``num_classes`` ... are None where the file does not record them; ``config`` is
    a kdforaa run's resolved config (kdforaa checkpoints only).
    """

    path: str
    format: str
    tensors: dict[str, Tensor]
    architecture: str | None = None
    num_classes: int | None = None
    in_channels: int | None = None
    config: dict[str, Any] | None = None
    resolution: tuple[int, int] | None = None
    student_resolution: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    data: str | None = None  # the data set's name (data.name), where recorded
    epoch: int | None = None  # epochs trained, where recorded


# ------------------------------------------------------------------------------------------ formats
def is_safetensors(path: str | Path) -> bool:
    """Whether the file starts like safetensors: an 8-byte little-endian header length, then ``{``."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(9)
            size = Path(path).stat().st_size
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") <= size - 8


def _is_tensor_dict(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and len(value) > 0
        and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in value.items())
    )


def _torch_format(state: Any) -> str | None:
    if is_kdforaa_checkpoint(state):
        return "kdforaa"
    if isinstance(state, Mapping) and _is_tensor_dict(state.get("model")):
        return "repdistiller"
    if _is_tensor_dict(state):
        return "state_dict"
    return None


def _what_it_holds(state: Any) -> str:
    if isinstance(state, Mapping):
        keys = ", ".join(repr(k) for k in list(state)[:4]) + (", ..." if len(state) > 4 else "")
        return f"a dict with keys {keys}" if state else "an empty dict"
    return f"a {type(state).__name__}"


def _unwrapped(tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The tensors without the ``module.`` prefix that a DataParallel/DDP wrapper puts on every key."""
    if tensors and all(key.startswith(_WRAPPER_PREFIX) for key in tensors):
        return {key.removeprefix(_WRAPPER_PREFIX): value for key, value in tensors.items()}
    return dict(tensors)


def _from_kdforaa(state: dict[str, Any], path: str) -> StoredWeights:
    try:
        config = state["config"]
        architecture = str(config["model"]["name"])
        num_classes, in_channels = int(state["num_classes"]), int(state["in_channels"])
    except (KeyError, TypeError, ValueError):
        raise BadInput(
            f"{path} is a kdforaa checkpoint without its model description (config.model.name, "
            "num_classes, in_channels): pass a run folder's last.pt or best.pt"
        ) from None
    distill = config.get("distill")
    data = config.get("data")
    epoch = state.get("epoch")
    student_resolution = distill.get("student_resolution") if isinstance(distill, dict) else None
    image_size, mean, std = state.get("image_size"), state.get("mean"), state.get("std")
    return StoredWeights(
        path=path,
        format="kdforaa",
        tensors=dict(state["model"]),
        architecture=architecture,
        num_classes=num_classes,
        in_channels=in_channels,
        config=config,
        resolution=tuple(image_size) if isinstance(image_size, list | tuple) else None,
        student_resolution=student_resolution if isinstance(student_resolution, int) else None,
        mean=tuple(mean) if isinstance(mean, list | tuple) else None,
        std=tuple(std) if isinstance(std, list | tuple) else None,
        data=str(data["name"]) if isinstance(data, dict) and "name" in data else None,
        epoch=epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None,
    )


def _parse_metadata_value(text: str, kind: str) -> Any:
    """One metadata value of ``kind`` (``name``, ``int``, ``ints`` or ``floats``: a tuple) from its
    plain form (``resnet8``, ``10``, ``28,28``), or from the JSON form of older exports (``"resnet8"``,
    ``[28, 28]``); None when it is neither."""
    if text.startswith(("[", '"')):  # an older export's JSON value
        try:
            value = json.loads(text)
        except ValueError:
            return None
        if isinstance(value, str) and kind == "name":
            return value or None
        if not isinstance(value, list) or any(isinstance(v, bool | str) for v in value):
            return None
        text = ",".join(str(v) for v in value)
    try:
        if kind == "name":
            return text if text.strip() else None
        if kind == "int":
            return int(text)
        numbers = tuple((int if kind == "ints" else float)(v) for v in text.split(","))
    except ValueError:
        return None
    return numbers


#: what :func:`parse_metadata` reads: metadata key -> (StoredWeights field, kind of value)
METADATA_FIELDS: dict[str, tuple[str, str]] = {
    META_ARCHITECTURE: ("architecture", "name"),
    META_DATA: ("data", "name"),
    META_NUM_CLASSES: ("num_classes", "int"),
    META_IN_CHANNELS: ("in_channels", "int"),
    META_RESOLUTION: ("resolution", "ints"),
    META_STUDENT_RESOLUTION: ("student_resolution", "int"),
    META_MEAN: ("mean", "floats"),
    META_STD: ("std", "floats"),
}


def parse_metadata(metadata: Mapping[str, str], path: str) -> dict[str, Any]:
    """The facts a safetensors file's ``kdforaa.*`` metadata records, as StoredWeights fields (absent
    keys are left out). The one place metadata is read: a value that does not parse is BadInput."""
    facts = {}
    for key, (field, kind) in METADATA_FIELDS.items():
        if key not in metadata:
            continue
        value = _parse_metadata_value(metadata[key], kind)
        if value is None:
            raise BadInput(
                f"{path}: safetensors metadata {key}={metadata[key]!r} is not a valid {kind}: "
                "re-export the file with kdforaa export"
            )
        facts[field] = value
    return facts


def _read_safetensors(path: str) -> StoredWeights:
    try:
        with safe_open(path, framework="pt", device="cpu") as fh:
            metadata = fh.metadata() or {}
            tensors = {key: fh.get_tensor(key) for key in fh.keys()}
    except Exception as err:  # safetensors raises its own error type for a damaged header or data
        raise BadInput(f"{path} is not a readable .safetensors file ({type(err).__name__})") from None
    if not tensors:
        raise BadInput(f"{path} holds no tensors: pass a file of model weights")
    return StoredWeights(
        path=path, format="safetensors", tensors=_unwrapped(tensors), **parse_metadata(metadata, path)
    )


def read_weights(path: str | Path, format: str = "auto") -> StoredWeights:
    """Read a weights file of ``format`` (one of ``kdforaa.config.WEIGHT_FORMATS``; ``auto`` detects it).

    BadInput when the file is missing, unreadable, holds pickled code, is none of the formats, or is
    not the format that was forced.
    """
    path = str(path)
    if Path(path).is_dir():
        raise BadInput(f"{path} is a folder: pass a checkpoint file in it, e.g. {Path(path) / 'best.pt'}")
    if not Path(path).is_file():
        raise BadInput(f"checkpoint {path} does not exist: pass a run folder's best.pt or a weights file")
    if is_safetensors(path):
        if format not in ("auto", "safetensors"):
            raise BadInput(
                f"{path} is a .safetensors file, not a {FORMAT_NAMES[format]}: "
                "set teacher.format (--format) to auto"
            )
        return _read_safetensors(path)
    if format == "safetensors":
        raise BadInput(f"{path} is not a .safetensors file: set teacher.format (--format) to auto")
    state = read_torch_file(path)
    found = _torch_format(state)
    if found is None:
        raise BadInput(
            f"{path} is not a kdforaa checkpoint, a RepDistiller/mdistiller checkpoint (weights under "
            f"'model'), a plain state dict or a .safetensors file: it holds {_what_it_holds(state)}"
        )
    if format not in ("auto", found):
        raise BadInput(
            f"{path} is a {FORMAT_NAMES[found]}, not a {FORMAT_NAMES[format]}: set teacher.format "
            f"(--format) to auto or {found}"
        )
    if found == "kdforaa":
        return _from_kdforaa(state, path)
    return StoredWeights(path, found, _unwrapped(state["model"] if found == "repdistiller" else state))


# ------------------------------------------------------------------------------------------ layouts
@functools.cache
def _prefix_pattern(template: str) -> re.Pattern[str]:
    """``"layer{s}.{b}.downsample."`` -> a regex matching that prefix, each ``{x}`` a group of digits."""
    parts = re.split(r"\{(\w+)\}", template)
    pattern = "".join(re.escape(p) if i % 2 == 0 else rf"(?P<{p}>\d+)" for i, p in enumerate(parts))
    return re.compile(pattern)


@dataclass(frozen=True)
class Layout:
    """Module names of a family of files, as prefix rules ``(theirs, ours)``, tried in order.

    Templates may hold ``{name}`` placeholders for numbers (stage, block). A key no rule matches has no
    counterpart on the other side.
    """

    name: str
    rules: tuple[tuple[str, str], ...]

    def _rename(self, key: str, to_ours: bool) -> str | None:
        for theirs, ours in self.rules:
            source, target = (theirs, ours) if to_ours else (ours, theirs)
            match = _prefix_pattern(source).match(key)
            if match:
                return target.format(**match.groupdict()) + key[match.end() :]
        return None

    def ours(self, key: str) -> str | None:
        """A key of the file -> the same weight's key in our model (None: it has none)."""
        return self._rename(key, to_ours=True)

    def theirs(self, key: str) -> str | None:
        """A key of our model -> the same weight's key in this layout (None: it has none)."""
        return self._rename(key, to_ours=False)


KDFORAA = Layout("kdforaa", (("", ""),))
TIMM = Layout("timm", (("", "model."),))
REPDISTILLER_RESNET = Layout(
    "repdistiller",
    (
        ("conv1.", "stem.0."),
        ("bn1.", "stem.1."),
        ("layer{s}.{b}.downsample.", "stage{s}.{b}.shortcut."),
        ("layer{s}.", "stage{s}."),
        ("fc.", "fc."),
    ),
)
REPDISTILLER_WRN = Layout(
    "repdistiller",
    (
        ("conv1.", "stem."),
        ("block{s}.layer.{b}.convShortcut.", "stage{s}.{b}.projection."),
        ("block{s}.layer.", "stage{s}."),
        ("bn1.", "final_bn."),
        ("fc.", "fc."),
    ),
)

#: RepDistiller's VGG, MobileNetV2, ShuffleNet V1/V2 and ResNet50: our modules carry its names
REPDISTILLER_SAME_NAMES = Layout("repdistiller", (("", ""),))


def layouts_of(model: nn.Module) -> list[Layout]:
    """The layouts weights for ``model`` may come in, ours first."""
    if isinstance(model, TimmClassifier):
        return [KDFORAA, TIMM]
    if isinstance(model, CifarResNet):
        return [KDFORAA, REPDISTILLER_RESNET]
    if isinstance(model, WideResNet):
        return [KDFORAA, REPDISTILLER_WRN]
    if isinstance(model, VGG | MobileNetV2 | ShuffleNetV1 | ShuffleNetV2 | ResNet50):
        return [KDFORAA, REPDISTILLER_SAME_NAMES]
    return [KDFORAA]


def detect_layout(keys: list[str], model: nn.Module) -> Layout:
    """The layout of ``model``'s possible ones under which most of the file's ``keys`` are its weights.

    Ties go to our own layout. A file of another architecture matches poorly under every layout; the
    strict load that follows names its first key that does not fit.
    """
    expected = set(model.state_dict())

    def hits(layout: Layout) -> int:
        return sum(layout.ours(key) in expected for key in keys)

    return max(layouts_of(model), key=hits)  # max keeps the first of equals

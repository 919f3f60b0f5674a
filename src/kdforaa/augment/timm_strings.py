"""Policies from timm-style augmentation strings (``rand-m9-n2-mstd0.5``, ``original-mstd0.5``, ``v0``).

The grammar is timm's (``timm.data.auto_augment``): a policy name, then ``-``-separated sections, each a
key followed by its number. What maps onto kdforaa's policies:

- ``rand`` with ``m`` (magnitude, default 10), ``n`` (ops per image, default 2), ``mstd`` (per-op level
  noise), ``mmax`` (level cap, default 10), ``p`` (probability of each op, default 0.5) and ``inc``:
  RandAugment over timm's 15 ops (the paper's 14 without identity, plus invert and solarize_add).
- ``original``, ``originalr`` (AutoAugment's ImageNet policy) and ``v0``, ``v0r`` (the TPU EfficientNet
  variant), each with ``mstd``: AutoAugment with levels capped at 10.
- ``trivialaugment`` (no sections): TrivialAugment-wide, as torchvision names it; timm has no string
  for it.

Levels are read on kdforaa's level table (docs/architecture.md): rotate, shear and translate get timm's
arguments; the four enhance ops those of timm's increasing variants (factor 1 ± 0.09·m; timm's ``inc0``,
``original`` and ``v0`` use 0.1 + 0.18·m); posterize and solarize always grow stronger with the level.
So ``inc0`` and ``inc1``, and the ``r`` variants, build the same policy here. Everything else (``augmix``,
``3a``, ``w`` weighted op choice, ``mstd`` above 100 for uniform levels) is BadInput naming the part.
"""

from __future__ import annotations

import re

from kdforaa.augment.policies import AutoAugment, Policy, RandAugment, TrivialAugment
from kdforaa.errors import BadInput

# timm's _RAND_TRANSFORMS in our op names (its Cutout is left to the pipeline, as in timm). A fact about
# timm, not derived from the op table: an op added there joins this list only if timm draws it too.
TIMM_RAND_OPS: tuple[str, ...] = (
    "autocontrast",
    "equalize",
    "invert",
    "rotate",
    "posterize",
    "solarize",
    "solarize_add",
    "color",
    "contrast",
    "brightness",
    "sharpness",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
)

# timm clips every level to [0, 10] unless the string sets mmax.
TIMM_LEVEL_CAP = 10.0

# timm policy name -> our AutoAugment table
_AUTOAUGMENT_NAMES = {"original": "imagenet", "originalr": "imagenet", "v0": "v0", "v0r": "v0"}
_RAND_KEYS = ("m", "n", "mstd", "mmax", "inc", "p")
_GRAMMAR = (
    "rand-m<M>-n<N>-mstd<S>-mmax<X>-p<P>-inc<0|1>, original|originalr|v0|v0r[-mstd<S>], or trivialaugment"
)


def _unsupported(spec: str, part: str, why: str) -> BadInput:
    return BadInput(f"augmentation string {spec!r}: {part!r} is not supported ({why}); use {_GRAMMAR}")


def _sections(spec: str, accepted: tuple[str, ...]) -> dict[str, float]:
    """The ``key<number>`` sections after the policy name, by key (numbers as floats)."""
    values: dict[str, float] = {}
    for part in spec.split("-")[1:]:
        match = re.fullmatch(r"([a-z]+)(\d+(?:\.\d*)?|\.\d+)", part)
        if match is None:
            raise _unsupported(spec, part, "a section is a key followed by a number, e.g. m9")
        key, number = match.groups()
        if key not in accepted:
            why = "weighted op choice" if key == "w" else f"keys here: {', '.join(accepted)}"
            raise _unsupported(spec, part, why)
        values[key] = float(number)
    return values


def _whole(spec: str, key: str, value: float) -> int:
    if value != int(value):
        raise BadInput(f"augmentation string {spec!r}: {key} must be a whole number, got {value:g}")
    return int(value)


def _noise(spec: str, values: dict[str, float]) -> float:
    std = values.get("mstd", 0.0)
    if std > 100:
        raise _unsupported(spec, f"mstd{std:g}", "mstd above 100 draws levels uniformly")
    return std


def policy_from_string(spec: str, *, fill: int = 0, interpolation: str = "nearest") -> Policy:
    """The policy a timm-style string names, e.g. ``rand-m9-n2-mstd0.5`` (see the module's docstring).

    ``fill`` and ``interpolation`` are kdforaa's (timm fills with the data set's mean and picks bilinear
    or bicubic at random).
    """
    if not isinstance(spec, str) or not spec:
        raise BadInput(
            f"an augmentation string must be a non-empty str like 'rand-m9-n2-mstd0.5', got {spec!r}"
        )
    name = spec.split("-")[0]
    if name == "rand":
        values = _sections(spec, _RAND_KEYS)
        cap = values.get("mmax", TIMM_LEVEL_CAP)
        return RandAugment(
            _whole(spec, "n", values.get("n", 2)),
            min(values.get("m", TIMM_LEVEL_CAP), cap),
            _noise(spec, values),
            magnitude_max=cap,
            prob=values.get("p", 0.5),
            ops=TIMM_RAND_OPS,
            fill=fill,
            interpolation=interpolation,
        )
    if name in _AUTOAUGMENT_NAMES:
        values = _sections(spec, ("mstd",))
        return AutoAugment(
            _AUTOAUGMENT_NAMES[name],
            magnitude_std=_noise(spec, values),
            magnitude_max=TIMM_LEVEL_CAP,
            fill=fill,
            interpolation=interpolation,
        )
    if name == "trivialaugment":
        _sections(spec, ())
        return TrivialAugment(fill=fill, interpolation=interpolation)
    why = {"augmix": "AugMix blends several augmented copies", "3a": "its ops include blur and greyscale"}
    raise _unsupported(spec, name, why.get(name, "unknown policy"))

"""Typed run configuration: YAML validated into pydantic models, plus dotted ``key=value`` overrides.

Every check of the configuration lives here, so that a bad config fails when it is loaded, with one
line: unknown keys, wrong types and out-of-range values (naming the key), and combinations of keys
that cannot work together (the model validators below). Only what needs the models themselves (stage
names, channel counts) is checked when the run's parts are built.
"""

from __future__ import annotations

import copy
import difflib
import html
import reprlib
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kdforaa.errors import BadInput
from kdforaa.limits import MAX_AUGMENT_OPS, MAX_SIDE, MAX_THREADS, MAX_WORKERS


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


#: ``data.name``: every data set kdforaa loads (the data registry, kdforaa.data.datasets, reads them here)
DataSetName = Literal["fashion-mnist", "mnist", "cifar10", "cifar100", "fashion-mnist-pairs", "folder"]
DATA_SET_NAMES: tuple[str, ...] = get_args(DataSetName)
#: the data set of a config that names none, and of a teacher file that records none
DEFAULT_DATA_SET: DataSetName = "fashion-mnist"
#: ``augment.policy``: ``none`` or one of the policies the augmentation engine builds (build_policy)
AugmentPolicyName = Literal["none", "randaugment", "autoaugment", "trivialaugment"]
#: the policies themselves, without ``none`` (``kdforaa outliers --policy``, ``augment-grid --policy``)
POLICY_NAMES: tuple[str, ...] = tuple(name for name in get_args(AugmentPolicyName) if name != "none")
#: ``augment.autoaugment_policy``: the AutoAugment papers' policies (their tables are in augment.policies)
AutoAugmentPolicyName = Literal["imagenet", "cifar10", "svhn"]
AUTOAUGMENT_POLICY_NAMES: tuple[str, ...] = get_args(AutoAugmentPolicyName)


class DataConfig(_Section):
    name: DataSetName = Field(
        default=DEFAULT_DATA_SET,
        description="the data set: fashion-mnist, mnist, cifar10, cifar100, fashion-mnist-pairs (100 "
        "classes: two Fashion-MNIST items side by side), or folder (an ImageNet-style folder of class "
        "subfolders)",
    )
    root: str | None = Field(
        default=None,
        description="the data set's folder; unset: $KDFORAA_DATA/<name>, then /usr/share/datasets/<name>",
    )
    limit: int | None = Field(default=None, gt=0, description="use only the first N training samples")
    test_limit: int | None = Field(
        default=None, gt=0, description="evaluate on the first N test samples only (quick checks)"
    )
    image_size: int = Field(
        default=224, gt=0, le=MAX_SIDE, description="folder data sets: images are decoded to this square size"
    )
    num_workers: int = Field(
        default=2, ge=0, le=MAX_WORKERS, description="folder data sets: Pillow decoding processes"
    )


class ModelConfig(_Section):
    name: str = Field(
        default="resnet20",
        description="the architecture (kdforaa models lists them); timm:<name> with timm installed",
    )


class AugmentConfig(_Section):
    policy: AugmentPolicyName = Field(
        default="none", description="the per-sample policy: none, randaugment, autoaugment, trivialaugment"
    )
    num_ops: int = Field(
        default=2, ge=0, le=MAX_AUGMENT_OPS, description="randaugment: ops applied to each sample"
    )
    ops: list[str] | None = Field(
        default=None,
        description="randaugment: the ops it draws from, e.g. [translate_x, rotate]; unset: the paper's 14",
    )
    magnitude: float = Field(
        default=9.0,
        ge=0,
        description="the level of every op (0-10 scale, not capped at 10); autoaugment: its published "
        "levels scaled by magnitude/9",
    )
    magnitude_std: float = Field(
        default=0.0, ge=0, description="per-op Gaussian noise on the level (floored at 0); 0: none"
    )
    autoaugment_policy: AutoAugmentPolicyName = Field(
        default="imagenet", description="autoaugment: which published policy"
    )
    crop_padding: int = Field(
        default=4, ge=0, le=MAX_SIDE, description="random crop after zero padding by this many pixels; 0: off"
    )
    flip: bool = Field(default=True, description="random horizontal flip")
    cutout: int = Field(
        default=0, ge=0, le=MAX_SIDE, description="side of the Cutout square, in pixels; 0: off"
    )
    fill: int = Field(
        default=0, ge=0, le=255, description="value of pixels without a source (padding, rotated-in corners)"
    )
    interpolation: Literal["nearest", "bilinear"] = Field(
        default="nearest", description="resampling of geometric ops: nearest or bilinear"
    )
    # every backend gives the same images, so it is not part of a soft-label cache's identity
    backend: Literal["auto", "torch", "native", "triton"] = Field(
        default="auto",
        description="where augmentation runs: auto (native C on the CPU, Triton on CUDA when installed), "
        "torch, native or triton (see the README's Augmentation backends); the images are the same",
    )
    off_last_epochs: int = Field(
        default=0, ge=0, description="the policy is off for the last N epochs (crop, flip, cutout stay)"
    )


class TrainConfig(_Section):
    epochs: int = Field(default=10, gt=0, description="training epochs")
    batch_size: int = Field(default=128, gt=0, description="training batch size")
    eval_batch_size: int = Field(default=1000, gt=0, description="test-set evaluation batch size")
    eval_every: int = Field(
        default=1,
        ge=0,
        description="epochs between test evaluations (the last epoch always); 0: the last only",
    )
    eval_limit: int | None = Field(
        default=None,
        gt=0,
        description="evaluations before the last epoch score the first N test images, the last one all of "
        "them; null: all, always",
    )
    lr: float = Field(default=0.1, gt=0, description="SGD learning rate (peak, after warm-up)")
    momentum: float = Field(default=0.9, ge=0, description="SGD momentum")
    nesterov: bool = Field(default=True, description="Nesterov momentum")
    weight_decay: float = Field(default=5e-4, ge=0, description="SGD weight decay")
    schedule: Literal["cosine", "step", "constant"] = Field(
        default="cosine", description="learning-rate schedule: cosine, step or constant"
    )
    milestones: list[float] = Field(
        default=[0.5, 0.75], description="step schedule: where the rate drops, as fractions of training"
    )
    gamma: float = Field(default=0.1, gt=0, description="step schedule: the factor at each milestone")
    warmup_epochs: float = Field(default=0.0, ge=0, description="linear warm-up, in epochs")
    label_smoothing: float = Field(
        default=0.0, ge=0, lt=1, description="label smoothing of the cross-entropy"
    )
    checkpoint_every: int = Field(default=0, ge=0, description="steps between checkpoints; 0: once per epoch")
    amp: bool = Field(default=True, description="bf16 autocast (CUDA only)")
    channels_last: bool = Field(
        default=True,
        description="channels-last memory format of models and batches (faster on CUDA and, measured, on "
        "the CPU)",
    )
    tensorboard: bool = Field(
        default=False,
        description="TensorBoard logs (rank 0: train/* every step, test/* and epoch/* every epoch; the "
        "tensorboard extra)",
    )
    on_nan: Literal["stop", "skip"] = Field(
        default="stop", description="on a non-finite loss: stop, or skip the step"
    )
    device: str = Field(default="auto", description="auto, cpu, cuda or cuda:N")
    threads: int = Field(
        default=0,
        ge=0,
        le=MAX_THREADS,
        description="torch CPU threads: 0 = every core the process may use (its CPU affinity, shared among "
        "a torchrun group's local processes), fixed for the run and never following load; N = exactly N. "
        "Bits depend on the count, not on load (README: Reproducibility)",
    )
    sync_bn: bool = Field(default=False, description="SyncBatchNorm across processes under torchrun")


#: ``teacher.checkpoint`` (and ``model.name``) values that name a timm architecture: ``timm:<name>``
TIMM_PREFIX = "timm:"
#: what a weights file can be (``teacher.format``, ``kdforaa eval --format``); ``auto`` reads it off the file
WeightFormat = Literal["auto", "kdforaa", "repdistiller", "state_dict", "safetensors"]
WEIGHT_FORMATS: tuple[str, ...] = get_args(WeightFormat)


class TeacherConfig(_Section):
    # "checkpoint" although it may name a timm model: most teachers are files, and the key is in every
    # config users have written; timm:<name> is the one non-file value (see the description)
    checkpoint: str | None = Field(
        default=None,
        description="the teacher: a weights file (a run's best.pt, a RepDistiller/mdistiller checkpoint, "
        "a state dict, a .safetensors file; see teacher.format) or timm:<name>, a timm model",
    )
    model: str | None = Field(
        default=None,
        description="the checkpoint's architecture (kdforaa models), for files that do not record it",
    )
    format: WeightFormat = Field(
        default="auto",
        description=f"what teacher.checkpoint (or teacher.weights) is: {', '.join(WEIGHT_FORMATS)}",
    )
    pretrained: bool = Field(
        default=False,
        description="timm:<name> teachers: load timm's pretrained weights (required: an untrained teacher "
        "is refused)",
    )
    weights: str | None = Field(
        default=None,
        description="timm:<name> teachers: a local file of those weights instead of timm's cache",
    )
    input: Literal["augmented", "clean"] = Field(
        default="augmented",
        description="what the teacher sees: the augmented images (as in the paper) or clean ones (ablation)",
    )
    cache: str | None = Field(
        default=None,
        description="a kdforaa cache-teacher folder to read the teacher's logits from instead of running it",
    )

    @property
    def is_timm(self) -> bool:
        return bool(self.checkpoint and self.checkpoint.startswith(TIMM_PREFIX))

    @model_validator(mode="after")
    def _consistent(self) -> TeacherConfig:
        describes_file = [
            f"teacher.{key}"
            for key, is_set in (
                ("model", self.model is not None),
                ("format", self.format != "auto"),
                ("pretrained", self.pretrained),
                ("weights", self.weights is not None),
            )
            if is_set
        ]
        if not self.checkpoint:
            if describes_file:
                raise ValueError(
                    f"{describes_file[0]} describes the teacher: set teacher.checkpoint=PATH (or timm:<name>)"
                )
            return self
        if self.is_timm:
            if not self.pretrained:
                raise ValueError(
                    f"teacher.checkpoint={self.checkpoint} would be an untrained, randomly initialised "
                    "teacher: set teacher.pretrained=true to load timm's pretrained weights "
                    "(teacher.weights=FILE for a local file of them)"
                )
            if self.model is not None:
                raise ValueError(
                    f"teacher.model: {self.checkpoint} names its own architecture: remove teacher.model"
                )
            if self.format != "auto" and self.weights is None:
                raise ValueError(
                    "teacher.format describes a weights file, and this timm teacher has none "
                    "(teacher.weights): remove teacher.format"
                )
            return self
        if self.pretrained or self.weights is not None:
            key = "teacher.pretrained" if self.pretrained else "teacher.weights"
            raise ValueError(
                f"{key} applies to timm:<name> teachers; {self.checkpoint} holds its own weights: "
                f"remove {key}"
            )
        if self.format in ("repdistiller", "state_dict") and self.model is None:
            raise ValueError(
                f"teacher.format={self.format}: such a checkpoint does not record its architecture: "
                "set teacher.model=NAME (e.g. resnet32x4; see kdforaa models)"
            )
        return self


# Defaults shared with the loss functions' own (kdforaa.distill.losses), so Python and config agree.
DEFAULT_TOP_K = 3  # topk_kd: the teacher's classes kept (the paper's K for 10 classes)
DEFAULT_TEMPERATURE = 1.0  # the paper's T


class DistillConfig(_Section):
    method: Literal["none", "kd", "topk_kd"] = Field(
        default="none", description="the logit term: none, kd (Hinton) or topk_kd (KDforAA)"
    )
    weight: float = Field(default=0.5, ge=0, description="λ, the weight of the logit term")
    ce_weight: float = Field(default=1.0, ge=0, description="the weight of the cross-entropy")
    k: int | None = Field(
        default=DEFAULT_TOP_K, gt=0, description="topk_kd: the teacher's classes kept (its top K); null: all"
    )
    k_schedule: dict[float, int] | None = Field(
        default=None,
        description="topk_kd: {level: k}, the k of samples augmented at that level or above (a per-sample K)",
    )
    include_label: bool = Field(
        default=False, description="topk_kd: add the ground-truth class to the teacher's top-K set"
    )
    topk_tail: Literal["drop", "merge"] = Field(
        default="drop",
        description="topk_kd: drop the classes outside the top K (the paper), or merge them into one bin "
        "whose mass the student must match",
    )
    temperature: float = Field(
        default=DEFAULT_TEMPERATURE, gt=0, description="the softmax temperature of the logit term"
    )
    adjust: Literal["none", "shift", "smooth"] = Field(
        default="none", description="knowledge adjustment of the teacher's targets: none, shift or smooth"
    )
    dynamic_temperature: bool = Field(
        default=False, description="per-sample temperatures around distill.temperature"
    )
    sp: float = Field(default=0.0, ge=0, description="similarity-preserving KD's weight (the last stage)")
    hints: dict[str, float] = Field(
        default={}, description="FitNets hints: {stage: weight}, one learned adapter per stage"
    )
    kr: float = Field(
        default=0.0, ge=0, description="Knowledge Representing: the weight of the aggregated-map term"
    )
    kr_sparse: float = Field(
        default=0.0, ge=0, description="Knowledge Representing: the weight of the sparse recoding penalty"
    )
    kr_stages: list[str] = Field(
        default=["stage2", "stage3"], description="Knowledge Representing: the stages both terms read"
    )
    kr_groups: int = Field(
        default=8, gt=0, description="Knowledge Representing: channel groups of each teacher stage's maps"
    )
    student_resolution: int | None = Field(
        default=None,
        gt=0,
        le=MAX_SIDE,
        description="N: the student sees NxN copies of the teacher's full-size images (train and test)",
    )

    @property
    def feature_terms(self) -> bool:
        """Whether a term reads stage features (SP, hints, KR): they need a live teacher, not a cache."""
        return self.sp > 0 or bool(self.hints) or self.kr > 0 or self.kr_sparse > 0

    @property
    def needs_teacher(self) -> bool:
        """Whether any term distils (a logit term or a feature term)."""
        return self.method != "none" or self.feature_terms

    @model_validator(mode="after")
    def _consistent(self) -> DistillConfig:
        if self.method == "none" and (self.adjust != "none" or self.dynamic_temperature):
            raise ValueError(
                "distill.adjust and distill.dynamic_temperature modify the logit distillation term: "
                "set distill.method=kd or topk_kd"
            )
        if self.k_schedule is not None:
            if self.method != "topk_kd":
                raise ValueError(
                    "distill.k_schedule applies to distill.method=topk_kd only "
                    f"(got {self.method}): remove it"
                )
            thresholds = sorted(self.k_schedule)
            if thresholds[0] != 0:
                raise ValueError(
                    f"distill.k_schedule needs a threshold at level 0 so every sample gets a k "
                    f"(e.g. {{0: 3, 10: 5}}); got thresholds {thresholds}"
                )
            if min(self.k_schedule.values()) < 1:
                raise ValueError(f"distill.k_schedule values must be k >= 1, got {self.k_schedule}")
        for stage, weight in self.hints.items():
            if weight < 0:
                raise ValueError(f"distill.hints.{stage}: weight must be >= 0, got {weight}")
        if (self.kr > 0 or self.kr_sparse > 0) and not self.kr_stages:
            raise ValueError("distill.kr_stages is empty: name the stages KR reads, e.g. [stage2, stage3]")
        return self


class RunConfig(_Section):
    seed: int = Field(default=0, description="seeds the model's initialisation and every per-sample key")
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    augment: AugmentConfig = AugmentConfig()
    train: TrainConfig = TrainConfig()
    teacher: TeacherConfig = TeacherConfig()
    distill: DistillConfig = DistillConfig()

    @model_validator(mode="after")
    def _teacher_for_the_terms(self) -> RunConfig:
        teacher, distill = self.teacher, self.distill
        if teacher.cache and not teacher.checkpoint:
            raise ValueError(
                "teacher.cache needs teacher.checkpoint, the teacher it was made from: "
                "set teacher.checkpoint=PATH"
            )
        if teacher.cache and distill.feature_terms:
            raise ValueError(
                "distill.sp, distill.hints and distill.kr need the teacher's features, which a cache "
                "does not hold: unset teacher.cache"
            )
        if distill.needs_teacher and not teacher.checkpoint:
            what = f"distill.method={distill.method}" if distill.method != "none" else "a feature term"
            raise ValueError(f"{what} needs a teacher: set teacher.checkpoint=PATH")
        return self

    @model_validator(mode="after")
    def _label_preserving_flip(self) -> RunConfig:
        """A mirrored pair swaps its two items, and so its class: on fashion-mnist-pairs augment.flip
        defaults to false, and true is refused."""
        if self.data.name == "fashion-mnist-pairs" and self.augment.flip:
            if "flip" in self.augment.model_fields_set:
                raise ValueError(
                    "augment.flip mirrors a fashion-mnist-pairs image, which swaps its two items and so "
                    "changes its class: set augment.flip=false"
                )
            self.augment.flip = False
        return self


# the sections of a run config by name: data, model, augment, train, teacher, distill
_SECTIONS: dict[str, type[_Section]] = {
    name: field.annotation
    for name, field in RunConfig.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, _Section)
}


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise BadInput(f"override {dotted!r}: {part!r} is not a section")
        node = child
    node[leaf] = value


def _parse_yaml(text: str, what: str) -> Any:
    """``yaml.safe_load(text)``, any failure -> BadInput naming ``what``.

    A malformed document fails with many error types (tag constructors raise ValueError or
    AttributeError, deep nesting RecursionError); all of them mean bad input.
    """
    try:
        return yaml.safe_load(text)
    except Exception as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise BadInput(f"{what} is not valid YAML: {first}") from None


def read_yaml_file(path: str | Path, what: str = "config") -> Any:
    """Read and ``safe_load`` a YAML file; unreadable, non-UTF-8 or malformed -> BadInput naming it."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise BadInput(f"cannot read {what} {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise BadInput(f"{what} {path} is not UTF-8 text: pass a YAML file") from None
    return _parse_yaml(text, f"{what} {path}")


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["train.lr=0.05", "distill.k=5"]`` -> nested dict; values are parsed as YAML scalars."""
    tree: dict[str, Any] = {}
    for item in overrides:
        if not isinstance(item, str):
            raise BadInput(f"override {item!r} is not of the form key.sub=value")
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise BadInput(f"override {item!r} is not of the form key.sub=value")
        _set_dotted(tree, key.strip(), _parse_yaml(raw, f"override {item!r}") if raw.strip() else None)
    return tree


def merge_trees(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` laid over ``base``, recursively for nested mappings (neither is modified)."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_trees(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _short_repr(value: Any) -> str:
    """An abbreviated repr: a YAML alias bomb makes a value whose full repr is gigabytes."""
    short = reprlib.Repr()
    short.maxlevel, short.maxlist, short.maxdict = 2, 4, 4
    return short.repr(value)


def config_keys(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[str]:
    """Every dotted key of ``model``, e.g. ``train.epochs``, in declaration order."""
    keys = []
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, _Section):
            keys.extend(config_keys(field.annotation, f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


def _closest_key(key: str, section: str = "") -> str:
    """`` (did you mean 'train.epochs'?)`` for the valid key or section nearest to ``key``, or nothing."""
    if section:
        known = [f"{section}.{k}" for k in config_keys(_SECTIONS[section])]
    else:
        known = [*_SECTIONS, *config_keys(RunConfig)]
    match = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _explain(err: ValidationError, section: str = "") -> str:
    """One line for the first error; ``section`` prefixes the keys of a section validated alone."""
    first = err.errors()[0]
    where = ".".join(str(p) for p in (section, *first["loc"]) if p != "") or "config"
    if first["type"] == "extra_forbidden":
        return (
            f"unknown config key {where!r}{_closest_key(where, section)}: remove it or fix its spelling "
            "(kdforaa config --schema lists every key)"
        )
    if first["type"] == "value_error" and isinstance(first.get("ctx", {}).get("error"), ValueError):
        return str(first["ctx"]["error"])  # a model validator's own sentence, which names its keys
    return f"config key {where!r}: {first['msg']} (got {_short_repr(first.get('input'))})"


def build_config(tree: dict[str, Any]) -> RunConfig:
    try:
        return RunConfig.model_validate(tree)
    except ValidationError as err:
        raise BadInput(_explain(err)) from None


def teacher_config(spec: str | TeacherConfig, **keys: Any) -> TeacherConfig:
    """A checked teacher section: ``spec`` (a path or ``timm:<name>``, or a section) with ``keys`` set.

    For callers outside a run config (``load_teacher("best.pt", ...)``, a cache built for another
    teacher file): the same checks as ``teacher:`` in a config, failing with the same one-line BadInput.
    """
    tree = spec.model_dump() if isinstance(spec, TeacherConfig) else {"checkpoint": spec}
    return build_section(TeacherConfig, **{**tree, **keys})


_S = TypeVar("_S", bound=_Section)


def build_section(kind: type[_S], /, **values: Any) -> _S:
    """One section of the config (:class:`DataConfig`, :class:`AugmentConfig`, ...) from keyword values,
    e.g. a command's options; a bad value is BadInput naming the dotted key."""
    section = next(name for name, cls in _SECTIONS.items() if cls is kind)
    try:
        return kind.model_validate(values)
    except ValidationError as err:
        raise BadInput(_explain(err, section)) from None


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML config (``None`` for all defaults) and apply dotted overrides."""
    tree: dict[str, Any] = {}
    if path is not None:
        tree = read_yaml_file(path) or {}
        if not isinstance(tree, dict):
            raise BadInput(f"config {path} must be a mapping of sections (data:, model:, train: ...)")
    return build_config(merge_trees(tree, parse_overrides(overrides or [])))


def config_to_dict(cfg: RunConfig) -> dict[str, Any]:
    return cfg.model_dump(mode="json")


def config_schema() -> dict[str, Any]:
    """The JSON schema of every key of a run config (types, defaults, bounds, choices, descriptions)."""
    return RunConfig.model_json_schema()


def _field_rows(model: type[BaseModel], prefix: str = "") -> list[tuple[str, Any, str | None]]:
    """``(dotted key, default, description)`` of every key of ``model``, in declaration order."""
    rows: list[tuple[str, Any, str | None]] = []
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, _Section):
            rows.extend(_field_rows(field.annotation, f"{prefix}{name}."))
        else:
            rows.append((f"{prefix}{name}", field.get_default(call_default_factory=True), field.description))
    return rows


def config_table() -> str:
    """A Markdown table of every config key (key, default, meaning) from the fields' descriptions: the
    README's table (``kdforaa config --markdown``; ``scripts/readme_config_table.py`` writes it there)."""
    lines = ["| key | default | meaning |", "|---|---|---|"]
    for key, default, description in _field_rows(RunConfig):
        shown = "—" if default is None else yaml.safe_dump(default, default_flow_style=True).strip()
        shown = shown.removesuffix("\n...").strip()  # a bare scalar ends the YAML document
        meaning = html.escape(description or "", quote=False).replace("|", "\\|").replace("*", "\\*")
        lines.append(f"| `{key}` | {shown} | {meaning} |")
    return "\n".join(lines) + "\n"

"""``kdforaa outliers``: which ops, at which levels, turn test images into outliers for a teacher.

KDforAA's premise (paper.md) is that strong augmentation sometimes removes what makes an image its
class, so the one-hot label becomes wrong; a teacher looking at the same augmented image can tell.
Here every op of a policy is applied alone at every level to the test split (a random sign per sample,
keys ``(seed, 0, sample index)``, so any measured image can be regenerated exactly), and the teacher's
predictions on the augmented images are compared with its predictions on the clean ones. The whole
policy at each level, as training applies it, is measured the same way.

Per op x level (``outliers.csv``; rates are shares in 0..1, accuracy is in %):
``n``, ``teacher_acc`` (top-1 on augmented images), ``outlier_rate`` (right on the clean image, wrong
on the augmented one), ``mean_true_prob`` (teacher probability of the true class), ``topk_coverage``
(true class among the teacher's top K) and ``t_stddev`` (Wang et al. 2022, :func:`teacher_stddev`).
"""

from __future__ import annotations

import math
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdforaa.analysis import report
from kdforaa.analysis.teacher_memo import TeacherMemo
from kdforaa.augment import SingleOp, build_policy
from kdforaa.augment.op_table import ARGUMENT_FREE_OPS, OP_NAMES
from kdforaa.augment.policies import (
    AUTOAUGMENT_POLICIES,
    RANDAUGMENT_OPS,
    Policy,
    RandAugment,
    TrivialAugment,
)
from kdforaa.augment.random import make_keys, permutation
from kdforaa.config import AUTOAUGMENT_POLICY_NAMES, DEFAULT_DATA_SET, POLICY_NAMES, AugmentConfig
from kdforaa.data.loader import batches
from kdforaa.errors import BadInput
from kdforaa.progress import bar as progress_bar
from kdforaa.progress import note

DEFAULT_LEVELS = (0.0, 5.0, 10.0, 15.0, 20.0, 30.0)
# Wang et al.'s code averages 10 batches of 64 teacher outputs per group (their --utils.check_ce_var).
WANG_GROUP_SIZE = 640
GALLERY_COLUMNS = 6  # tiles per gallery row (each tile is two images wide)
STAT_COLUMNS = ("n", "teacher_acc", "outlier_rate", "mean_true_prob", "topk_coverage", "t_stddev")


# ------------------------------------------------------------------------------------------ op sets
@dataclass(frozen=True)
class OpSet:
    """The ops measured one at a time, and the whole policy they belong to (built per level)."""

    name: str  # randaugment | autoaugment | trivialaugment | ops (a list given by the user)
    ops: tuple[str, ...]
    num_ops: int = 2
    autoaugment_policy: str = "imagenet"

    def policy(self, level: float) -> Policy:
        """The whole policy at ``level`` as training builds it.

        AutoAugment scales its published levels by ``level / 9`` (build_policy); TrivialAugment has no
        magnitude in training (it draws levels up to 30), so here ``level`` is its ``max_level``;
        RandAugment and user op lists apply ``num_ops`` ops of the set at ``level``.
        """
        if self.name == "autoaugment":
            cfg = AugmentConfig(
                policy="autoaugment", magnitude=level, autoaugment_policy=self.autoaugment_policy
            )
            policy = build_policy(cfg)
            assert policy is not None  # policy="autoaugment" builds one
            return policy
        if self.name == "trivialaugment":
            return TrivialAugment(max_level=round(level), ops=self.ops)
        return RandAugment(self.num_ops, level, ops=self.ops)

    def describe(self) -> str:
        """The whole policy in words, ``L`` standing for the level."""
        if self.name == "autoaugment":
            return f"AutoAugment({self.autoaugment_policy}, levels x L/9)"
        if self.name == "trivialaugment":
            return "TrivialAugment(max_level=L)"
        if self.name == "randaugment":
            return f"RandAugment({self.num_ops}, L)"
        return f"RandAugment({self.num_ops}, L) over {'+'.join(self.ops)}"


def resolve_op_set(spec: str, num_ops: int = 2, autoaugment_policy: str = "imagenet") -> OpSet:
    """``randaugment``, ``autoaugment``, ``trivialaugment`` or a comma list of op names -> an OpSet."""
    if spec == "autoaugment":
        if autoaugment_policy not in AUTOAUGMENT_POLICY_NAMES:  # those a config builds (OpSet.policy)
            choices = ", ".join(AUTOAUGMENT_POLICY_NAMES)
            raise BadInput(f"AutoAugment policy {autoaugment_policy!r} is not one of {choices}")
        table = AUTOAUGMENT_POLICIES[autoaugment_policy]
        ops = tuple(dict.fromkeys(op for sub in table for op, _, _ in sub))
        return OpSet(spec, ops, num_ops, autoaugment_policy)
    if spec in POLICY_NAMES:  # randaugment and trivialaugment draw from the same 14 ops
        return OpSet(spec, RANDAUGMENT_OPS, num_ops, autoaugment_policy)
    names = [name.strip() for name in spec.split(",") if name.strip()]
    unknown = [name for name in names if name not in OP_NAMES]
    if not names or unknown:
        raise BadInput(
            f"{unknown[0] if unknown else spec!r} is neither a policy "
            f"({', '.join(POLICY_NAMES)}) nor an op ({', '.join(OP_NAMES)})"
        )
    ops = tuple(dict.fromkeys(names))
    return OpSet("ops", ops, num_ops, autoaugment_policy)


def parse_levels(text: str) -> list[float]:
    """``"0,5,10"`` -> ``[0.0, 5.0, 10.0]``; anything else (empty, negative, not a number) is BadInput.

    It parses the text of a ``--levels`` flag (``kdforaa outliers``, ``kdforaa augment-grid``, the
    outlier benchmark), so its message names that flag."""
    try:
        levels = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise BadInput(f"--levels must be comma-separated numbers like 0,5,10, got {text!r}") from None
    if not levels or any(not math.isfinite(v) or v < 0 for v in levels):
        raise BadInput(f"--levels must be non-negative numbers like 0,5,10, got {text!r}")
    return levels


# --------------------------------------------------------------------------------------- statistics
def teacher_stddev(
    probs: torch.Tensor, group_size: int = WANG_GROUP_SIZE, order: torch.Tensor | None = None
) -> float:
    """Wang et al. (NeurIPS 2022) "stddev of teacher's mean probability" (T. stddev) of ``probs`` ``(N,C)``.

    The teacher's softmax outputs, taken in ``order`` (default: as given), are cut into
    ``G = floor(N / group_size)`` groups ``g`` (a last, incomplete group is dropped). Each group gives a
    mean probability vector ``m_g = (1/|g|) sum_{i in g} p_i`` (one value per class); the statistic is the
    standard deviation of ``m_g`` across groups (unbiased, ``G - 1``), averaged over the ``C`` classes::

        T_stddev = (1/C) sum_c sqrt( sum_g (m_gc - mbar_c)^2 / (G - 1) ),   mbar_c = (1/G) sum_g m_gc

    as in their code (``check_ce_var``: 10 batches of 64 outputs per group, ``std(dim=0).mean()``). They
    show a student's test loss rises with it: a lower value marks a better augmentation for KD. Their
    groups pool the teacher's outputs on the standard-augmented and on the strongly augmented copy,
    because their student sees both; a KDforAA student sees only the augmented image, so callers pass
    the outputs on augmented images only. NaN with fewer than two groups.
    """
    if group_size < 1:
        raise BadInput(f"group_size must be at least 1, got {group_size}")
    if order is not None:
        probs = probs[order]
    groups = probs.shape[0] // group_size
    if groups < 2:
        return math.nan
    means = probs[: groups * group_size].double().view(groups, group_size, -1).mean(dim=1)
    return float(means.std(dim=0, correction=1).mean())


def outlier_stats(
    clean: torch.Tensor,
    augmented: torch.Tensor,
    labels: torch.Tensor,
    *,
    k: int = 3,
    group_size: int = WANG_GROUP_SIZE,
    order: torch.Tensor | None = None,
) -> dict[str, float]:
    """The statistics of one op x level from teacher probabilities ``(N,C)`` on clean and augmented images.

    ``teacher_acc`` is in %; ``outlier_rate``, ``mean_true_prob`` and ``topk_coverage`` are in 0..1.
    """
    n = labels.numel()
    right_clean = clean.argmax(1) == labels
    right_augmented = augmented.argmax(1) == labels
    true_prob = augmented.gather(1, labels[:, None])[:, 0]
    top = augmented.topk(min(k, augmented.shape[1]), dim=1).indices
    return {
        "n": n,
        "teacher_acc": 100.0 * float(right_augmented.double().mean()),
        "outlier_rate": float((right_clean & ~right_augmented).double().mean()),
        "mean_true_prob": float(true_prob.double().mean()),
        "topk_coverage": float((top == labels[:, None]).any(1).double().mean()),
        "t_stddev": teacher_stddev(augmented, group_size, order),
    }


# ----------------------------------------------------------------------------------------- teacher
def predict_probs(
    memo: TeacherMemo,
    dataset: Any,
    policy: Policy | None,
    *,
    seed: int,
    batch_size: int,
    on_batch: Callable[[int], object] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher softmax ``(N,C)`` float32 (CPU) on every image of ``dataset`` augmented by ``policy``, and
    ``(N,)`` bool: whether the augmented image is flat (one value everywhere, e.g. moved out of frame).

    Sample ``i`` is augmented with key ``(seed, 0, i)``: the same sample always gets the same draw.
    """
    augmented = []
    for images, _, indices in batches(dataset, torch.arange(len(dataset)), batch_size):
        x = images.to(memo.device)
        if policy is not None:
            x = policy.apply(x, policy.sample(make_keys(seed, 0, indices)))
        augmented.append(x)
    x = torch.cat(augmented)  # the whole pass at once: the images not seen before run in full batches
    probs = memo(x)
    if on_batch is not None:
        on_batch(len(x))
    return probs, (x.amax(dim=(1, 2, 3)) == x.amin(dim=(1, 2, 3))).cpu()


# ----------------------------------------------------------------------------------------- gallery
@dataclass(frozen=True)
class Outlier:
    """One augmented image the teacher got wrong after getting its clean version right."""

    drop: float  # clean minus augmented probability of the true class
    op: str
    level: float | None  # None: an op without an argument (the same at every level)
    index: int
    label: int
    true_prob: float  # on the augmented image
    top: tuple[tuple[int, float], ...]  # the teacher's top-3 (class, probability) on the augmented image
    flat: bool = False  # the op left one value everywhere (a blank image)


def find_outliers(
    clean: torch.Tensor,
    augmented: torch.Tensor,
    labels: torch.Tensor,
    op: str,
    level: float | None,
    count: int,
    flat: torch.Tensor | None = None,
) -> list[Outlier]:
    """The ``count`` outliers of one op x level with the largest drop of true-class probability
    (``flat``: ``(N,)`` bool, which augmented images are blank)."""
    outlier = (clean.argmax(1) == labels) & (augmented.argmax(1) != labels)
    rows = outlier.nonzero().squeeze(1)
    if count <= 0 or rows.numel() == 0:
        return []
    drop = clean[rows, labels[rows]] - augmented[rows, labels[rows]]
    best = rows[drop.topk(min(count, rows.numel())).indices]
    probs, classes = augmented[best].topk(min(3, augmented.shape[1]), dim=1)
    return [
        Outlier(
            drop=float(clean[i, labels[i]] - augmented[i, labels[i]]),
            op=op,
            level=level,
            index=int(i),
            label=int(labels[i]),
            true_prob=float(augmented[i, labels[i]]),
            top=tuple(zip(classes[j].tolist(), probs[j].tolist(), strict=True)),
            flat=bool(flat[i]) if flat is not None else False,
        )
        for j, i in enumerate(best.tolist())
    ]


def strongest_outliers(candidates: Sequence[Outlier], count: int) -> list[Outlier]:
    """The ``count`` largest drops, each test image once and no op more than a quarter of the gallery
    (so that one destructive op, e.g. invert, does not fill it); blank results only where too few
    others remain (a blank image is an outlier of no interest)."""
    per_op = max(1, math.ceil(count / 4))
    chosen: list[Outlier] = []
    images: set[int] = set()
    used: dict[str, int] = {}
    for item in sorted(candidates, key=lambda o: (o.flat, -o.drop)):
        if len(chosen) == count:
            break
        if item.index in images or used.get(item.op, 0) >= per_op:
            continue
        chosen.append(item)
        images.add(item.index)
        used[item.op] = used.get(item.op, 0) + 1
    return chosen


def _display(image: torch.Tensor) -> np.ndarray:
    """``(C,H,W)`` uint8 -> ``(H,W)`` grey or ``(H,W,3)`` RGB, as the gallery draws it."""
    array = image.permute(1, 2, 0).cpu().numpy()
    return array[..., 0] if array.shape[2] == 1 else array


def side_by_side(clean: torch.Tensor, augmented: torch.Tensor, gap: int = 3) -> torch.Tensor:
    """``(C,H,W)`` uint8 clean and augmented images joined left to right by a mid-grey bar ``gap`` pixels
    wide (visible against black and white backgrounds alike)."""
    bar = torch.full((clean.shape[0], clean.shape[1], gap), 128, dtype=torch.uint8)
    return torch.cat([clean.cpu(), bar, augmented.cpu()], dim=2)


def _gallery(outliers: Sequence[Outlier], dataset: Any, seed: int, path: Path) -> Path:
    """Regenerate each outlier's augmented image from its key and draw it right of its clean image,
    with the teacher's top-3 on the augmented one."""
    images, captions = [], []
    classes = dataset.classes
    for o in outliers:
        policy = SingleOp(o.op, 0.0 if o.level is None else o.level)
        params = policy.sample(make_keys(seed, 0, [o.index]))
        clean = dataset.images(torch.tensor([o.index]))
        images.append(_display(side_by_side(clean[0], policy.apply(clean, params)[0])))
        lines = [params.describe(0), *(["(the op left it blank)"] if o.flat else [])]
        lines.append(f"#{o.index} true {classes[o.label][:12]} {o.true_prob:.2f}")
        lines += [f"{rank}. {classes[c][:12]} {p:.2f}" for rank, (c, p) in enumerate(o.top, 1)]
        captions.append("\n".join(lines))
    title = (
        "Strongest outliers (clean | augmented): teacher right on the clean image, wrong after the op; "
        "its top 3 on the augmented one"
    )
    columns = max(1, min(GALLERY_COLUMNS, len(images)))
    if columns < 4:  # too narrow a figure for the whole sentence
        title = "Strongest outliers\n(clean | augmented)"
    else:
        title = "\n".join(textwrap.wrap(title, width=int(1.9 * 6.5 * columns)))  # fits the figure
    return report.image_gallery(images, captions, path, title=title, columns=GALLERY_COLUMNS)


# ------------------------------------------------------------------------------------------- driver
@dataclass(frozen=True)
class OutlierResults:
    """What :func:`analyse_outliers` (and :func:`run_outliers`, which adds the data set's name) measured
    and wrote: what a caller reports."""

    rows: list[dict[str, Any]]  # per op x level; one row (level None) per op without an argument
    policy_rows: list[dict[str, Any]]  # clean ("none") then the whole policy per level
    outliers: list[Outlier]  # the gallery's
    clean_acc: float  # teacher top-1 (%) on the clean images
    files: dict[str, Path]
    images_run: int = 0  # images the teacher actually ran on (each distinct image once)
    images_measured: int = 0  # images measured in all (clean, every op x level, the policy per level)
    images: int = 0  # test images in the split measured
    group_size: int = WANG_GROUP_SIZE  # teacher outputs per group of t_stddev
    data: str | None = None  # the data set's name, where run_outliers loaded it

    @property
    def t_stddev_measured(self) -> bool:
        """Whether the images made two groups at least, so that t_stddev has values (else NaN)."""
        return self.images >= 2 * self.group_size


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d}"


class _Passes:
    """The teacher's passes over the data set, one per policy measured: their probabilities, one progress
    bar over all of them and the time left."""

    def __init__(
        self, memo: TeacherMemo, dataset: Any, seed: int, batch_size: int, total: int, progress: bool
    ):
        self.memo, self.dataset, self.seed, self.batch_size = memo, dataset, seed, batch_size
        self.total, self.done, self.progress = total, 0, progress
        self.bar = progress_bar(total * len(dataset), "outliers", enabled=progress, unit="img")
        self.started = time.perf_counter()

    def probs(self, policy: Policy | None, label: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The teacher's probabilities ``(N, classes)`` under ``policy`` (None: the clean images) and
        ``(N,)`` whether each augmented image is flat (see :func:`predict_probs`)."""
        if policy is not None:
            self.bar.set_postfix_str(label)
        measured = predict_probs(
            self.memo,
            self.dataset,
            policy,
            seed=self.seed,
            batch_size=self.batch_size,
            on_batch=self.bar.update,
        )
        self.done += 1
        return measured

    def note(self, what: str) -> None:
        """A progress line: ``what`` was measured, the time so far and about how much is left."""
        elapsed = time.perf_counter() - self.started
        left = elapsed / self.done * (self.total - self.done)
        note(f"outliers: {what}; {_clock(elapsed)} elapsed, about {_clock(left)} left", enabled=self.progress)


def _measure_ops(
    passes: _Passes,
    op_levels: list[tuple[str, list[float | None]]],
    clean: torch.Tensor,
    labels: torch.Tensor,
    stats: Callable[[torch.Tensor], dict[str, float]],
    *,
    k: int,
    gallery: int,
) -> tuple[list[dict[str, Any]], list[Outlier]]:
    """Each op alone at each of its levels (None: an argument-free op, measured once): one row of
    statistics per op and level, and twice ``gallery`` outlier candidates of each."""
    rows, candidates = [], []
    for number, (op, levels) in enumerate(op_levels, 1):
        for level in levels:
            label = op if level is None else f"{op} L={level:g}"
            computed, flat = passes.probs(SingleOp(op, 0.0 if level is None else level), label)
            candidates += find_outliers(clean, computed, labels, op, level, 2 * gallery, flat)
            rows.append({"op": op, "level": level, "k": k, **stats(computed)})
        passes.note(f"op {number}/{len(op_levels)} ({op}) done")
    return rows, candidates


def analyse_outliers(
    teacher: Callable[[torch.Tensor], torch.Tensor],
    dataset: Any,
    out: str | Path,
    *,
    op_set: OpSet,
    levels: Sequence[float] = DEFAULT_LEVELS,
    seed: int = 0,
    k: int = 3,
    batch_size: int = 500,
    device: torch.device | str = "cpu",
    group_size: int = WANG_GROUP_SIZE,
    gallery: int = 16,
    progress: bool = True,
) -> OutlierResults:
    """Measure every op of ``op_set`` at every level, and the whole policy per level, on ``dataset``.

    Writes ``outliers.csv``, ``outliers_heatmap.png``, ``outliers_gallery.png`` and ``policy_stats.csv``
    into ``out``. Ops without an argument (identity, autocontrast, equalize, invert) are the same at
    every level: they are measured once and have one row, its level empty. The teacher runs once per
    distinct image (:class:`~kdforaa.analysis.teacher_memo.TeacherMemo`), with the same results.
    """
    if len(dataset) == 0:
        raise BadInput("the data set split is empty: nothing to measure")
    out = Path(out)
    labels = dataset.labels[: len(dataset)].long()
    order = permutation(seed, 0, len(dataset))
    op_levels: list[tuple[str, list[float | None]]] = [
        (op, [None] if op in ARGUMENT_FREE_OPS else list(levels)) for op in op_set.ops
    ]
    total = 1 + len(levels) + sum(len(op_level) for _, op_level in op_levels)
    memo = TeacherMemo(teacher, dataset.mean, dataset.std, device, batch_size)
    passes = _Passes(memo, dataset, seed, batch_size, total, progress)

    def stats(augmented: torch.Tensor) -> dict[str, float]:
        return outlier_stats(clean, augmented, labels, k=k, group_size=group_size, order=order)

    try:
        clean, _ = passes.probs(None, "clean")
        rows, candidates = _measure_ops(passes, op_levels, clean, labels, stats, k=k, gallery=gallery)
        policy_rows = [{"policy": "none", "level": 0.0, "k": k, **stats(clean)}]
        for level in levels:
            augmented, _ = passes.probs(op_set.policy(level), f"policy L={level:g}")
            policy_rows.append({"policy": op_set.describe(), "level": level, "k": k, **stats(augmented)})
        passes.note("the whole policy done")
    finally:
        passes.bar.close()
    chosen = strongest_outliers(candidates, gallery)
    files = _write(out, rows, policy_rows, op_set, levels, chosen, dataset, seed)
    clean_acc = 100.0 * float((clean.argmax(1) == labels).double().mean())
    return OutlierResults(
        rows,
        policy_rows,
        chosen,
        clean_acc,
        files,
        images_run=memo.computed,
        images_measured=memo.requested,
        images=len(dataset),
        group_size=group_size,
    )


def outlier_rate_table(
    rows: Sequence[dict[str, Any]], policy_rows: Sequence[dict[str, Any]], levels: Sequence[float]
) -> tuple[np.ndarray, list[str], list[str]]:
    """The heatmap's outlier rates in % ``(R, L [+1])``, row labels and column labels.

    Rows: the ops with a level, then those without (one value, in an extra "any" column), then the
    whole policy; cells that do not exist are NaN (drawn blank).
    """
    columns = [f"{level:g}" for level in levels]
    level_free = [r for r in rows if r["level"] is None]
    width = len(levels) + (1 if level_free else 0)
    by_op: dict[str, np.ndarray] = {}
    for r in rows:
        line = by_op.setdefault(r["op"], np.full(width, np.nan))
        line[len(levels) if r["level"] is None else list(levels).index(r["level"])] = 100 * r["outlier_rate"]
    policy = np.full(width, np.nan)
    policy[: len(levels)] = [100 * r["outlier_rate"] for r in policy_rows[1:]]
    labels = [*by_op, "whole policy"]
    return np.array([*by_op.values(), policy]), labels, [*columns, *(["any"] if level_free else [])]


def _wrapped(title: str, columns: int) -> str:
    """``title`` in lines that fit a heat map of ``columns`` columns (report.heatmap's width)."""
    return "\n".join(textwrap.wrap(title, width=max(24, int(8 * (1.4 + 0.75 * columns)))))


def _write(
    out: Path,
    rows: list[dict[str, Any]],
    policy_rows: list[dict[str, Any]],
    op_set: OpSet,
    levels: Sequence[float],
    chosen: list[Outlier],
    dataset: Any,
    seed: int,
) -> dict[str, Path]:
    columns = ("op", "level", "k", *STAT_COLUMNS)
    rates, row_labels, column_labels = outlier_rate_table(rows, policy_rows, levels)
    return {
        "csv": report.write_csv(rows, columns, out / "outliers.csv"),
        "policy_csv": report.write_csv(policy_rows, ("policy", *columns[1:]), out / "policy_stats.csv"),
        "heatmap": report.heatmap(
            rates,
            row_labels,
            column_labels,
            out / "outliers_heatmap.png",
            title=_wrapped(
                "Outlier rate (%): teacher right on clean, wrong on augmented "
                f"(each op alone; whole policy: {op_set.describe()})",
                len(column_labels),
            ),
            colorbar_label="outlier rate (%)",
            x_label="level (any: the op has none)",
        ),
        "gallery": _gallery(chosen, dataset, seed, out / "outliers_gallery.png"),
    }


def default_data(teacher: str, format: str = "auto") -> tuple[str, str | None]:
    """The data set (name, root) a weights file records: a kdforaa run checkpoint its config's, an
    exported ``.safetensors`` file its name; Fashion-MNIST otherwise."""
    from kdforaa.checkpoint import load_checkpoint
    from kdforaa.config import TIMM_PREFIX
    from kdforaa.models.weight_formats import read_weights

    if teacher.startswith(TIMM_PREFIX) or not Path(teacher).is_file():
        return DEFAULT_DATA_SET, None
    try:
        data = load_checkpoint(teacher).get("config", {}).get("data", {})
        return data.get("name", DEFAULT_DATA_SET), data.get("root")
    except BadInput:  # another weights format: an export may record the data set's name
        pass
    try:
        stored = read_weights(teacher, format)
    except BadInput:  # the teacher's own load says what is wrong with the file
        return DEFAULT_DATA_SET, None
    return stored.data or DEFAULT_DATA_SET, None


@dataclass(frozen=True)
class OutlierOptions:
    """What :func:`run_outliers` measures and where: the teacher and its test split, the ops and levels,
    and the statistics' settings (the ``kdforaa outliers`` flags of the same names). BadInput, naming
    the field, when a value is out of range."""

    teacher: str  # weights: a run's best.pt, an exported .safetensors file, a state dict, or timm:<name>
    out: str | Path  # the folder for the tables and figures
    model: str | None = None  # the architecture of weights that do not record it
    format: str = "auto"  # what the weights file is (config.WEIGHT_FORMATS)
    data: str | None = None  # the data set; None: the one the teacher's file records (default_data)
    root: str | None = None  # the data set's folder
    limit: int | None = None  # measure the first N test images; None: all of them
    device: str = "auto"  # auto, cpu, cuda or cuda:N
    policy: str = "randaugment"  # a policy (config.POLICY_NAMES) or a comma list of op names
    levels: tuple[float, ...] = DEFAULT_LEVELS
    num_ops: int = 2  # ops per image of the whole RandAugment policy
    autoaugment_policy: str = "imagenet"
    seed: int = 0  # of the per-sample augmentation keys
    k: int = 3  # K of topk_coverage
    batch_size: int = 500  # teacher batch size
    group_size: int = WANG_GROUP_SIZE  # teacher outputs averaged per group of t_stddev
    gallery: int = 16  # outliers drawn in the gallery
    progress: bool = True  # a bar on a terminal, else a line per op on stderr (kdforaa.progress)

    def __post_init__(self) -> None:
        for name, value in (("k", self.k), ("batch_size", self.batch_size), ("group_size", self.group_size)):
            if value < 1:
                raise BadInput(f"{name} must be at least 1, got {value}")
        if self.limit is not None and self.limit < 1:
            raise BadInput(f"limit must be at least 1 (or None: every test image), got {self.limit}")
        if self.gallery < 0:
            raise BadInput(f"gallery must be 0 or more, got {self.gallery}")
        if not self.levels or any(not math.isfinite(v) or v < 0 for v in self.levels):
            raise BadInput(f"levels must be non-negative numbers, e.g. (0, 5, 10), got {self.levels}")


def run_outliers(options: OutlierOptions) -> OutlierResults:
    """``kdforaa outliers`` without its printing: load the teacher and the test split ``options`` name,
    measure every op at every level (:func:`analyse_outliers`) and write the tables and figures.

    Progress goes to stderr through :mod:`kdforaa.progress` (``options.progress``); what was found and
    written comes back in the results, for the caller to report.
    """
    from kdforaa.config import DataConfig, teacher_config
    from kdforaa.data.datasets import load_dataset
    from kdforaa.distill.teacher import load_teacher
    from kdforaa.train.device import resolve_device

    report.check_plotting("kdforaa outliers")
    op_set = resolve_op_set(options.policy, options.num_ops, options.autoaugment_policy)
    op_set.policy(max(options.levels))  # a bad num_ops etc. fails now, not after the per-op passes
    data, root = options.data, options.root
    if data is None:
        data, recorded_root = default_data(options.teacher, options.format)
        root = root or recorded_root
    dataset = load_dataset(DataConfig(name=data, root=root, test_limit=options.limit), "test")
    device = resolve_device(options.device)
    spec = teacher_config(options.teacher, model=options.model, format=options.format)
    frozen = load_teacher(spec, dataset.num_classes, dataset.in_channels, device, dataset.image_size)
    results = analyse_outliers(
        frozen,
        dataset,
        options.out,
        op_set=op_set,
        levels=options.levels,
        seed=options.seed,
        k=options.k,
        batch_size=options.batch_size,
        device=device,
        group_size=options.group_size,
        gallery=options.gallery,
        progress=options.progress,
    )
    return replace(results, data=data)

"""The distillation terms of the training objective: each a small module that reads one step's outputs.

A term holds its weight(s) and whatever it learns (hint and KR adapters) and returns its unweighted
value(s) as ``(name, weight, value)`` triples; the criterion adds ``weight · value`` of each to the
cross-entropy. Names are what the metrics log shows: ``"distill"`` (the logit term), ``"sp"``,
``"hint:<stage>"``, ``"kr"`` and ``"kr_sparse"``.

Every subclass of :class:`Term` registers itself in :data:`TERMS` when it is defined and builds itself
from the ``distill:`` section (:meth:`Term.from_config`): the criterion asks each registered kind, in
definition order, for its terms. A new loss is its function (:mod:`kdforaa.distill.losses`), one
``Term`` subclass here and its config keys (:class:`kdforaa.config.DistillConfig`); nothing else.

How the logit term's options combine, in this order:

1. dynamic temperature (``distill.dynamic_temperature``): per-sample temperatures around
   ``distill.temperature`` (β = 1, γ = 2, cosine weight: τ stays within ±1 of it, so use a base of
   2 or more), computed from the raw student and teacher logits;
2. knowledge adjustment (``distill.adjust``): the teacher's softmax at each sample's temperature is
   corrected where its argmax is wrong ("shift": swap; "smooth": label smoothing with ε = 0.1), and
   replaces the teacher's logits (as ``T·log p``, whose softmax at T is the adjusted distribution);
3. ``topk_kd`` keeps the top-k classes of that (adjusted) distribution and renormalises both sides
   over them; k comes from ``distill.k`` or, per sample, from ``distill.k_schedule`` and the sample's
   augmentation level.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from kdforaa.config import DistillConfig
from kdforaa.distill.knowledge_representing import KnowledgeRepresenting
from kdforaa.distill.losses import (
    HintAdapter,
    dynamic_temperature,
    hint,
    kd,
    knowledge_adjustment,
    similarity_preserving,
    topk_kd,
)
from kdforaa.errors import BadInput

Features = dict[str, torch.Tensor]
POOLED = "pooled"  # the models' name for the (B, D) vector after global pooling
Weighted = list[tuple[str, float, torch.Tensor]]


@dataclass(frozen=True)
class StepOutputs:
    """What one training step produced, as the terms read it.

    ``student_logits`` (B,C) float32; ``labels`` (B,) int64; ``teacher_logits`` (B,C) or None; ``level``
    (B,) float32 augmentation levels or None; ``*_feats`` stage name -> (B,C,H,W) features in network
    order (None when no term reads features).
    """

    student_logits: torch.Tensor
    labels: torch.Tensor
    teacher_logits: torch.Tensor | None = None
    level: torch.Tensor | None = None
    student_feats: Features | None = None
    teacher_feats: Features | None = None

    def features(self) -> tuple[Features, Features]:
        """Both sides' features; ValueError when the step did not compute them."""
        if self.student_feats is None or self.teacher_feats is None:
            raise ValueError("distill.sp / hints / kr need student_feats and teacher_feats")
        return self.student_feats, self.teacher_feats


def as_float(x: torch.Tensor) -> torch.Tensor:
    """Half-precision activations (autocast) are promoted: softmaxes and Gram matrices need the range."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def sp_stage(stages: Iterable[str]) -> str:
    """The stage SP reads: the last one before global pooling ("pooled" only if it is the only one)."""
    names = list(stages)
    spatial = [name for name in names if name != POOLED]
    return (spatial or names)[-1]


@dataclass(frozen=True)
class StageChannels:
    """Stage name -> channel count of each model, in network order (the models' ``stage_channels``;
    None for a model that does not report them): what terms that read features build against."""

    student: dict[str, int] | None = None
    teacher: dict[str, int] | None = None

    def of(self, key: str, stage: str) -> tuple[int, int]:
        """``(student, teacher)`` channels at ``stage``, which config key ``key`` names; BadInput (listing
        the model's stages) when a model lacks it or does not report its stages."""
        counts = []
        for side, channels in (("student", self.student), ("teacher", self.teacher)):
            if channels is None:
                raise BadInput(f"{key} needs a {side} model that reports its stage channels")
            if stage not in channels:
                raise BadInput(
                    f"{key} names stage {stage!r}, which the {side} model does not have; "
                    f"available stages: {', '.join(channels)}"
                )
            counts.append(channels[stage])
        return counts[0], counts[1]


#: Every kind of term, in the order the criterion adds them (the order their classes are defined).
TERMS: list[type[Term]] = []


class Term(nn.Module):
    """One distillation term; subclasses register themselves in :data:`TERMS`.

    ``key`` is the term's name in ``Criterion.terms`` and so in checkpoints' state dict keys (a class
    attribute, or set per instance when a kind builds several terms); ``reads_features`` whether the
    step must compute stage features for it.
    """

    key: str
    reads_features: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        TERMS.append(cls)

    @classmethod
    def from_config(cls, cfg: DistillConfig, channels: StageChannels) -> list[Term]:
        """The terms of this kind that ``cfg`` switches on (none when it is off), checked against the
        models' ``channels`` where they read features."""
        raise NotImplementedError

    def forward(self, out: StepOutputs) -> Weighted:
        """``(name, weight, unweighted value)`` of each value the term computes at this step."""
        raise NotImplementedError


class LogitTerm(Term):
    """Hinton KD or KDforAA's top-K KD on the logits (``distill.method``), weight ``distill.weight``."""

    k_thresholds: torch.Tensor  # (N,) float32 k_schedule levels, ascending (buffers, registered below)
    k_values: torch.Tensor  # (N,) int64: the k from each threshold on

    key = "distill"

    @classmethod
    def from_config(cls, cfg: DistillConfig, channels: StageChannels) -> list[Term]:
        return [cls(cfg)] if cfg.method != "none" else []

    def __init__(self, cfg: DistillConfig) -> None:
        super().__init__()
        self.cfg = cfg
        schedule = sorted((cfg.k_schedule or {}).items())
        # levels compare in float32 on both sides, so a threshold written as 0.3 catches level 0.3
        thresholds = torch.tensor([level for level, _ in schedule], dtype=torch.float32)
        self.register_buffer("k_thresholds", thresholds, persistent=False)
        self.register_buffer(
            "k_values", torch.tensor([k for _, k in schedule], dtype=torch.int64), persistent=False
        )

    def per_sample_k(self, level: torch.Tensor | None) -> int | torch.Tensor | None:
        """Per sample, the k of the largest ``k_schedule`` threshold <= its level: (B,) int64.

        Without a schedule, or without levels, ``distill.k`` (None = all classes)."""
        if not len(self.k_thresholds) or level is None:
            return self.cfg.k
        levels = level.detach().to(self.k_thresholds.device, torch.float32).contiguous()
        slot = torch.searchsorted(self.k_thresholds, levels, right=True) - 1
        return self.k_values[slot.clamp_min(0)]

    def forward(self, out: StepOutputs) -> Weighted:
        cfg = self.cfg
        if out.teacher_logits is None:
            raise ValueError(f"distill.method={cfg.method} needs teacher_logits")
        student_logits, teacher_logits = out.student_logits, as_float(out.teacher_logits)
        if teacher_logits.shape != student_logits.shape:
            raise ValueError(
                f"teacher logits {tuple(teacher_logits.shape)} do not match student logits "
                f"{tuple(student_logits.shape)}"
            )
        teacher_logits = teacher_logits.detach().to(student_logits.dtype)
        temperature: float | torch.Tensor = cfg.temperature
        if cfg.dynamic_temperature:
            temperature = dynamic_temperature(student_logits, teacher_logits, base=cfg.temperature)
        if cfg.adjust != "none":
            t_row = torch.as_tensor(temperature, dtype=teacher_logits.dtype, device=teacher_logits.device)
            t_row = t_row.reshape(-1, 1) if t_row.dim() else t_row
            probs = (teacher_logits / t_row).softmax(dim=1)
            adjusted = knowledge_adjustment(probs, out.labels, mode=cfg.adjust)
            teacher_logits = t_row * adjusted.clamp_min(torch.finfo(adjusted.dtype).tiny).log()
        if cfg.method == "kd":
            value = kd(student_logits, teacher_logits, temperature)
        else:
            value = topk_kd(
                student_logits,
                teacher_logits,
                self.per_sample_k(out.level),
                temperature,
                include_label=out.labels if cfg.include_label else None,
                tail=cfg.topk_tail,
            )
        return [("distill", cfg.weight, value)]


class SimilarityTerm(Term):
    """Similarity-preserving KD on the last stage before pooling, weight ``distill.sp``."""

    key = "sp"
    reads_features = True

    @classmethod
    def from_config(cls, cfg: DistillConfig, channels: StageChannels) -> list[Term]:
        return [cls(cfg.sp)] if cfg.sp > 0 else []

    def __init__(self, weight: float) -> None:
        super().__init__()
        self.weight = weight

    def forward(self, out: StepOutputs) -> Weighted:
        student, teacher = out.features()
        value = similarity_preserving(
            as_float(student[sp_stage(student)]), as_float(teacher[sp_stage(teacher)])
        )
        return [("sp", self.weight, value)]


class HintTerm(Term):
    """A FitNets hint at one stage through its learned adapter, weight ``distill.hints[stage]``."""

    reads_features = True

    @classmethod
    def from_config(cls, cfg: DistillConfig, channels: StageChannels) -> list[Term]:
        terms: list[Term] = []
        for stage, weight in cfg.hints.items():
            student, teacher = channels.of("distill.hints", stage)
            terms.append(cls(stage, weight, HintAdapter(student, teacher)))
        return terms

    def __init__(self, stage: str, weight: float, adapter: HintAdapter) -> None:
        super().__init__()
        self.stage, self.weight, self.adapter = stage, weight, adapter
        self.key = f"hint_{stage}"

    def forward(self, out: StepOutputs) -> Weighted:
        student, teacher = out.features()
        value = hint(as_float(student[self.stage]), as_float(teacher[self.stage]), self.adapter)
        return [(f"hint:{self.stage}", self.weight, value)]


class KnowledgeRepresentingTerm(Term):
    """Knowledge Representing's aggregation term (``distill.kr``) and, when ``distill.kr_sparse`` > 0,
    its sparse recoding penalty (:mod:`kdforaa.distill.knowledge_representing`)."""

    key = "kr"
    reads_features = True

    @classmethod
    def from_config(cls, cfg: DistillConfig, channels: StageChannels) -> list[Term]:
        if not (cfg.kr > 0 or cfg.kr_sparse > 0):
            return []
        student_channels = {}
        for stage in cfg.kr_stages:
            student_channels[stage], teacher = channels.of("distill.kr_stages", stage)
            if cfg.kr_groups > teacher:
                raise BadInput(
                    f"distill.kr_groups={cfg.kr_groups} exceeds the teacher's {teacher} channels "
                    f"at stage {stage}: choose at most {teacher}"
                )
        module = KnowledgeRepresenting(student_channels, cfg.kr_stages, cfg.kr_groups)
        return [cls(module, cfg.kr_stages, cfg.kr, cfg.kr_sparse)]

    def __init__(
        self, module: KnowledgeRepresenting, stages: list[str], weight: float, sparse: float
    ) -> None:
        super().__init__()
        self.module, self.stages, self.weight, self.sparse = module, list(stages), weight, sparse

    def forward(self, out: StepOutputs) -> Weighted:
        student, teacher = out.features()
        value, penalty = self.module(
            {stage: as_float(student[stage]) for stage in self.stages},
            {stage: as_float(teacher[stage]) for stage in self.stages},
            sparse=self.sparse > 0,
        )
        values = [("kr", self.weight, value)]
        if penalty is not None:
            values.append(("kr_sparse", self.sparse, penalty))
        return values

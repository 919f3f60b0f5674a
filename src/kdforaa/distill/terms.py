"""The distillation terms of the training objective: each a small module that reads one step's outputs.

A term holds its weight(s) and whatever it learns (hint and KR adapters) and returns its unweighted
value(s) as ``(name, weight, value)`` triples; the criterion adds ``weight · value`` of each to the
cross-entropy. Names are what the metrics log shows: ``"distill"`` (the logit term), ``"sp"``,
``"hint:<stage>"``, ``"kr"`` and ``"kr_sparse"``.

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


class LogitTerm(nn.Module):
    """Hinton KD or KDforAA's top-K KD on the logits (``distill.method``), weight ``distill.weight``."""

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


class SimilarityTerm(nn.Module):
    """Similarity-preserving KD on the last stage before pooling, weight ``distill.sp``."""

    def __init__(self, weight: float) -> None:
        super().__init__()
        self.weight = weight

    def forward(self, out: StepOutputs) -> Weighted:
        student, teacher = out.features()
        value = similarity_preserving(
            as_float(student[sp_stage(student)]), as_float(teacher[sp_stage(teacher)])
        )
        return [("sp", self.weight, value)]


class HintTerm(nn.Module):
    """A FitNets hint at one stage through its learned adapter, weight ``distill.hints[stage]``."""

    def __init__(self, stage: str, weight: float, adapter: HintAdapter) -> None:
        super().__init__()
        self.stage, self.weight, self.adapter = stage, weight, adapter

    def forward(self, out: StepOutputs) -> Weighted:
        student, teacher = out.features()
        value = hint(as_float(student[self.stage]), as_float(teacher[self.stage]), self.adapter)
        return [(f"hint:{self.stage}", self.weight, value)]


class KnowledgeRepresentingTerm(nn.Module):
    """Knowledge Representing's aggregation term (``distill.kr``) and, when ``distill.kr_sparse`` > 0,
    its sparse recoding penalty (:mod:`kdforaa.distill.knowledge_representing`)."""

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

"""The training objective as configured by ``distill:``: cross-entropy plus distillation terms.

``loss = ce_weight·CE(y, s) + weight·(kd | topk_kd) + sp·SP(last stage) + Σ_stage w·hint(stage)
+ kr·KR + kr_sparse·P`` (KR and its sparse recoding penalty P: :mod:`kdforaa.distill.knowledge_representing`)

How the logit options combine, in this order:

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

import torch
import torch.nn.functional as F
from torch import nn

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
from kdforaa.train.config import DistillConfig

Features = dict[str, torch.Tensor]
POOLED = "pooled"  # the models' name for the (B, D) vector after global pooling


def _as_float(x: torch.Tensor) -> torch.Tensor:
    """Half-precision activations (autocast) are promoted: softmaxes and Gram matrices need the range."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def sp_stage(stages: Iterable[str]) -> str:
    """The stage SP reads: the last one before global pooling ("pooled" only if it is the only one)."""
    names = list(stages)
    spatial = [name for name in names if name != POOLED]
    return (spatial or names)[-1]


class Criterion(nn.Module):
    """Composite loss of one run. Owns the learnable hint and KR adapters (optimise them with the student).

    Call as ``criterion(student_logits, labels, teacher_logits=None, level=None, student_feats=None,
    teacher_feats=None)`` -> ``(loss, terms)``: ``loss`` a scalar to back-propagate, ``terms`` the
    detached unweighted values of each term (``"ce"``, ``"distill"``, ``"sp"``, ``"hint:<stage>"``,
    ``"kr"``, ``"kr_sparse"``).
    """

    def __init__(
        self,
        cfg: DistillConfig,
        num_classes: int,
        label_smoothing: float = 0.0,
        adapters: dict[str, HintAdapter] | None = None,
        student_stages: Iterable[str] = (),
        kr: KnowledgeRepresenting | None = None,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.adapters = nn.ModuleDict(adapters or {})
        self.kr = kr
        self.student_stages = tuple(student_stages)
        schedule = sorted((cfg.k_schedule or {}).items())
        # levels compare in float32 on both sides, so a threshold written as 0.3 catches level 0.3
        thresholds = torch.tensor([level for level, _ in schedule], dtype=torch.float32)
        self.register_buffer("k_thresholds", thresholds, persistent=False)
        self.register_buffer(
            "k_values", torch.tensor([k for _, k in schedule], dtype=torch.int64), persistent=False
        )

    @property
    def needs_teacher(self) -> bool:
        return self.cfg.method != "none" or self.needs_features

    @property
    def needs_features(self) -> bool:
        return self.cfg.feature_terms

    @property
    def feature_stages(self) -> tuple[str, ...]:
        """Student stages the feature terms read (for SP: known only when the student's stages are)."""
        stages = list(self.cfg.hints)
        if self.cfg.sp > 0 and self.student_stages:
            stages.append(sp_stage(self.student_stages))
        if self.kr is not None:
            stages += self.cfg.kr_stages
        return tuple(dict.fromkeys(stages))

    def per_sample_k(self, level: torch.Tensor | None) -> int | torch.Tensor | None:
        """Per sample, the k of the largest ``k_schedule`` threshold <= its level: (B,) int64.

        Without a schedule, or without levels, ``distill.k`` (None = all classes)."""
        if not len(self.k_thresholds) or level is None:
            return self.cfg.k
        levels = level.detach().to(self.k_thresholds.device, torch.float32).contiguous()
        slot = torch.searchsorted(self.k_thresholds, levels, right=True) - 1
        return self.k_values[slot.clamp_min(0)]

    def _logit_term(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor,
        labels: torch.Tensor,
        level: torch.Tensor | None,
    ) -> torch.Tensor:
        cfg = self.cfg
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
            adjusted = knowledge_adjustment((teacher_logits / t_row).softmax(dim=1), labels, mode=cfg.adjust)
            teacher_logits = t_row * adjusted.clamp_min(torch.finfo(adjusted.dtype).tiny).log()
        if cfg.method == "kd":
            return kd(student_logits, teacher_logits, temperature)
        include = labels if cfg.include_label else None
        return topk_kd(
            student_logits,
            teacher_logits,
            self.per_sample_k(level),
            temperature,
            include_label=include,
            tail=cfg.topk_tail,
        )

    def forward(
        self,
        student_logits: torch.Tensor,
        labels: torch.Tensor,
        teacher_logits: torch.Tensor | None = None,
        level: torch.Tensor | None = None,
        student_feats: Features | None = None,
        teacher_feats: Features | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``student_logits``, ``teacher_logits``: (B,C); ``labels``: (B,) int64; ``level``: (B,) float
        augmentation levels; ``*_feats``: stage name -> (B,C,H,W) features, in network order."""
        cfg = self.cfg
        if student_logits.shape[1] != self.num_classes:
            raise ValueError(
                f"student logits have {student_logits.shape[1]} classes, expected {self.num_classes}"
            )
        student_logits = _as_float(student_logits)
        ce = F.cross_entropy(student_logits, labels, label_smoothing=self.label_smoothing)
        loss = cfg.ce_weight * ce
        terms = {"ce": ce}
        if cfg.method != "none":
            if teacher_logits is None:
                raise ValueError(f"distill.method={cfg.method} needs teacher_logits")
            terms["distill"] = self._logit_term(student_logits, _as_float(teacher_logits), labels, level)
            loss = loss + cfg.weight * terms["distill"]
        if self.needs_features:
            if student_feats is None or teacher_feats is None:
                raise ValueError("distill.sp / hints / kr need student_feats and teacher_feats")
            if cfg.sp > 0:
                terms["sp"] = similarity_preserving(
                    _as_float(student_feats[sp_stage(student_feats)]),
                    _as_float(teacher_feats[sp_stage(teacher_feats)]),
                )
                loss = loss + cfg.sp * terms["sp"]
            for stage, weight in cfg.hints.items():
                value = hint(
                    _as_float(student_feats[stage]), _as_float(teacher_feats[stage]), self.adapters[stage]
                )
                terms[f"hint:{stage}"] = value
                loss = loss + weight * value
            if self.kr is not None:
                student_kr = {stage: _as_float(student_feats[stage]) for stage in cfg.kr_stages}
                teacher_kr = {stage: _as_float(teacher_feats[stage]) for stage in cfg.kr_stages}
                terms["kr"], sparse = self.kr(student_kr, teacher_kr, sparse=cfg.kr_sparse > 0)
                loss = loss + cfg.kr * terms["kr"]
                if sparse is not None:
                    terms["kr_sparse"] = sparse
                    loss = loss + cfg.kr_sparse * sparse
        return loss, {name: value.detach() for name, value in terms.items()}


def _check_k_schedule(cfg: DistillConfig) -> None:
    if cfg.k_schedule is None:
        return
    if cfg.method != "topk_kd":
        raise BadInput(
            f"distill.k_schedule applies to distill.method=topk_kd only (got {cfg.method}): remove it"
        )
    thresholds = sorted(cfg.k_schedule)
    if thresholds[0] != 0:
        raise BadInput(
            f"distill.k_schedule needs a threshold at level 0 so every sample gets a k "
            f"(e.g. {{0: 3, 10: 5}}); got thresholds {thresholds}"
        )
    if min(cfg.k_schedule.values()) < 1:
        raise BadInput(f"distill.k_schedule values must be k >= 1, got {cfg.k_schedule}")


def _check_logit_options(cfg: DistillConfig) -> None:
    if cfg.method == "none" and (cfg.adjust != "none" or cfg.dynamic_temperature):
        raise BadInput(
            "distill.adjust and distill.dynamic_temperature modify the logit distillation term: "
            "set distill.method=kd or topk_kd"
        )


def _check_stage(
    key: str, stage: str, student_channels: dict[str, int] | None, teacher_channels: dict[str, int] | None
) -> None:
    """``stage`` (named by config key ``key``) must be a stage of both models; the error lists theirs."""
    for side, channels in (("student", student_channels), ("teacher", teacher_channels)):
        if channels is None:
            raise BadInput(f"{key} needs a {side} model that reports its stage channels")
        if stage not in channels:
            raise BadInput(
                f"{key} names stage {stage!r}, which the {side} model does not have; "
                f"available stages: {', '.join(channels)}"
            )


def _hint_adapters(
    hints: dict[str, float],
    student_channels: dict[str, int] | None,
    teacher_channels: dict[str, int] | None,
) -> dict[str, HintAdapter]:
    adapters = {}
    for stage, weight in hints.items():
        if weight < 0:
            raise BadInput(f"distill.hints.{stage}: weight must be >= 0, got {weight}")
        _check_stage("distill.hints", stage, student_channels, teacher_channels)
        adapters[stage] = HintAdapter(student_channels[stage], teacher_channels[stage])
    return adapters


def _knowledge_representing(
    cfg: DistillConfig, student_channels: dict[str, int] | None, teacher_channels: dict[str, int] | None
) -> KnowledgeRepresenting | None:
    if cfg.kr == 0 and cfg.kr_sparse == 0:
        return None
    if not cfg.kr_stages:
        raise BadInput("distill.kr_stages is empty: name the stages KR reads, e.g. [stage2, stage3]")
    for stage in cfg.kr_stages:
        _check_stage("distill.kr_stages", stage, student_channels, teacher_channels)
        if cfg.kr_groups > teacher_channels[stage]:
            raise BadInput(
                f"distill.kr_groups={cfg.kr_groups} exceeds the teacher's {teacher_channels[stage]} channels "
                f"at stage {stage}: choose at most {teacher_channels[stage]}"
            )
    return KnowledgeRepresenting(student_channels, cfg.kr_stages, cfg.kr_groups)


def build_criterion(
    cfg: DistillConfig,
    num_classes: int,
    label_smoothing: float = 0.0,
    student_channels: dict[str, int] | None = None,
    teacher_channels: dict[str, int] | None = None,
) -> Criterion:
    """Validate ``distill:`` against the models and build its :class:`Criterion`.

    ``student_channels`` / ``teacher_channels``: stage name -> channel count, in network order (the
    models' ``stage_channels``); needed for hints and KR, whose adapters map student onto teacher channels.
    Inconsistent settings are :class:`~kdforaa.errors.BadInput`.
    """
    _check_k_schedule(cfg)
    _check_logit_options(cfg)
    adapters = _hint_adapters(cfg.hints, student_channels, teacher_channels)
    kr = _knowledge_representing(cfg, student_channels, teacher_channels)
    return Criterion(cfg, num_classes, label_smoothing, adapters, student_channels or (), kr)

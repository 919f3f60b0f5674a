"""The training objective: ``ce_weight · CE(y, s) + Σ weight · term``, the terms built once from ``distill:``.

The terms (:mod:`kdforaa.distill.terms`), in the order they are added: the logit term (``kd`` or
``topk_kd``, weight ``distill.weight``), similarity-preserving KD (``distill.sp``), one hint per stage
(``distill.hints``), Knowledge Representing and its sparse penalty (``distill.kr``, ``distill.kr_sparse``).
The config model has already refused every inconsistent combination of keys (:mod:`kdforaa.config`);
building checks only what needs the models: that named stages exist and fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kdforaa.config import DistillConfig
from kdforaa.distill.knowledge_representing import KnowledgeRepresenting
from kdforaa.distill.losses import HintAdapter
from kdforaa.distill.terms import (
    Features,
    HintTerm,
    KnowledgeRepresentingTerm,
    LogitTerm,
    SimilarityTerm,
    StepOutputs,
    as_float,
)
from kdforaa.errors import BadInput


class Criterion(nn.Module):
    """Cross-entropy plus a weighted sum of distillation terms. Owns the terms' learnable adapters
    (optimise ``criterion.parameters()`` with the student).

    Call as ``criterion(student_logits, labels, teacher_logits=None, level=None, student_feats=None,
    teacher_feats=None)`` -> ``(loss, values)``: ``loss`` a scalar to back-propagate, ``values`` the
    detached unweighted value of each term by name (``"ce"`` and the terms' names).
    """

    # Version 2: the terms are modules under ``terms.<key>``; version 1 kept the hint adapters under
    # ``adapters.<stage>`` and KR under ``kr`` (see _load_from_state_dict).
    _version = 2

    def __init__(
        self,
        terms: Sequence[nn.Module],
        num_classes: int,
        ce_weight: float = 1.0,
        label_smoothing: float = 0.0,
        needs_features: bool = False,
    ) -> None:
        super().__init__()
        self.terms = nn.ModuleDict({_key(term): term for term in terms})
        self.num_classes = num_classes
        self.ce_weight = ce_weight
        self.label_smoothing = label_smoothing
        #: whether a term reads stage features: the step must compute them for student and teacher
        self.needs_features = needs_features

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
        if student_logits.shape[1] != self.num_classes:
            raise ValueError(
                f"student logits have {student_logits.shape[1]} classes, expected {self.num_classes}"
            )
        student_logits = as_float(student_logits)
        ce = F.cross_entropy(student_logits, labels, label_smoothing=self.label_smoothing)
        loss = self.ce_weight * ce
        values = {"ce": ce}
        outputs = StepOutputs(student_logits, labels, teacher_logits, level, student_feats, teacher_feats)
        for term in self.terms.values():
            for name, weight, value in term(outputs):
                values[name] = value
                loss = loss + weight * value
        return loss, {name: value.detach() for name, value in values.items()}

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, local_metadata, *args) -> None:
        """Read checkpoints of version 1 (before the terms) too: their keys are renamed to the terms'."""
        if local_metadata.get("version", 1) < 2:
            renames = {f"{prefix}kr.": f"{prefix}terms.kr.module."}
            renames |= {
                f"{prefix}adapters.{stage}.": f"{prefix}terms.{_key(term)}.adapter."
                for term in self.terms.values()
                if isinstance(term, HintTerm)
                for stage in [term.stage]
            }
            for key in list(state_dict):
                for old, new in renames.items():
                    if key.startswith(old):
                        state_dict[new + key[len(old) :]] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args)


def _key(term: nn.Module) -> str:
    """The term's name in ``criterion.terms`` (and in its state_dict keys)."""
    if isinstance(term, HintTerm):
        return f"hint_{term.stage}"
    return {LogitTerm: "distill", SimilarityTerm: "sp", KnowledgeRepresentingTerm: "kr"}[type(term)]


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


def _hint_terms(
    hints: dict[str, float],
    student_channels: dict[str, int] | None,
    teacher_channels: dict[str, int] | None,
) -> list[HintTerm]:
    terms = []
    for stage, weight in hints.items():
        _check_stage("distill.hints", stage, student_channels, teacher_channels)
        adapter = HintAdapter(student_channels[stage], teacher_channels[stage])
        terms.append(HintTerm(stage, weight, adapter))
    return terms


def _knowledge_representing(
    cfg: DistillConfig, student_channels: dict[str, int] | None, teacher_channels: dict[str, int] | None
) -> KnowledgeRepresenting:
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
    """The :class:`Criterion` of ``distill:``, its terms checked against the models.

    ``student_channels`` / ``teacher_channels``: stage name -> channel count, in network order (the
    models' ``stage_channels``); needed for hints and KR, whose adapters map student onto teacher
    channels. A stage that a model lacks, or too many KR groups, is :class:`~kdforaa.errors.BadInput`.
    """
    terms: list[nn.Module] = []
    if cfg.method != "none":
        terms.append(LogitTerm(cfg))
    if cfg.sp > 0:
        terms.append(SimilarityTerm(cfg.sp))
    terms += _hint_terms(cfg.hints, student_channels, teacher_channels)
    if cfg.kr > 0 or cfg.kr_sparse > 0:
        module = _knowledge_representing(cfg, student_channels, teacher_channels)
        terms.append(KnowledgeRepresentingTerm(module, cfg.kr_stages, cfg.kr, cfg.kr_sparse))
    return Criterion(terms, num_classes, cfg.ce_weight, label_smoothing, needs_features=cfg.feature_terms)

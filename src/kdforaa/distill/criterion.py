"""The training objective: ``ce_weight · CE(y, s) + Σ weight · term``, the terms built once from ``distill:``.

The terms (:mod:`kdforaa.distill.terms`) build themselves: each registered kind of term reads its keys
of ``distill:`` (in the order the kinds are defined: the logit term ``kd``/``topk_kd``, similarity-
preserving KD, one hint per stage, Knowledge Representing and its sparse penalty). The config model has
already refused every inconsistent combination of keys (:mod:`kdforaa.config`); building checks only
what needs the models: that named stages exist and fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kdforaa.config import DistillConfig
from kdforaa.distill.terms import TERMS, Features, HintTerm, StageChannels, StepOutputs, Term, as_float


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
        terms: Sequence[Term],
        num_classes: int,
        ce_weight: float = 1.0,
        label_smoothing: float = 0.0,
        needs_features: bool = False,
    ) -> None:
        super().__init__()
        self.terms = nn.ModuleDict({term.key: term for term in terms})
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

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, local_metadata: dict[str, Any], *args: Any
    ) -> None:
        """Read checkpoints of version 1 (before the terms) too: their keys are renamed to the terms'."""
        if local_metadata.get("version", 1) < 2:
            renames = {f"{prefix}kr.": f"{prefix}terms.kr.module."}
            renames |= {
                f"{prefix}adapters.{stage}.": f"{prefix}terms.{term.key}.adapter."
                for term in self.terms.values()
                if isinstance(term, HintTerm)
                for stage in [term.stage]
            }
            for key in list(state_dict):
                for old, new in renames.items():
                    if key.startswith(old):
                        state_dict[new + key[len(old) :]] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args)


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
    channels = StageChannels(student_channels, teacher_channels)
    terms = [term for kind in TERMS for term in kind.from_config(cfg, channels)]
    needs_features = any(term.reads_features for term in terms)
    return Criterion(terms, num_classes, cfg.ce_weight, label_smoothing, needs_features=needs_features)

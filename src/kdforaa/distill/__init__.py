"""Knowledge distillation: losses on logits and features, the configured criterion, the frozen teacher."""

from kdforaa.distill.criterion import Criterion, build_criterion
from kdforaa.distill.knowledge_representing import KnowledgeRepresenting
from kdforaa.distill.losses import (
    HintAdapter,
    dynamic_temperature,
    hint,
    kd,
    knowledge_adjustment,
    similarity_preserving,
    topk_kd,
    topk_mask,
)
from kdforaa.distill.teacher import Teacher, load_teacher

__all__ = [
    "Criterion",
    "HintAdapter",
    "KnowledgeRepresenting",
    "Teacher",
    "build_criterion",
    "dynamic_temperature",
    "hint",
    "kd",
    "knowledge_adjustment",
    "load_teacher",
    "similarity_preserving",
    "topk_kd",
    "topk_mask",
]

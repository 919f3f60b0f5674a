"""Knowledge distillation: losses, the terms and criterion built from them, the teacher (live or cached),
and the views a step's student and teacher see.

Modules, bottom to top: ``losses`` (pure functions), ``knowledge_representing``, ``terms`` (one module
per distillation term), ``criterion`` (CE plus a weighted sum of terms), ``views`` (what the student and
teacher see at a step), ``teacher`` (the frozen live teacher), ``cache`` (the replayable soft-label cache),
``distiller`` (one training step of all of them, for ``kdforaa train`` and for your own loop).
"""

from kdforaa.distill.criterion import Criterion, build_criterion
from kdforaa.distill.distiller import DataFacts, Distiller, DistillStep, build_teacher
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
from kdforaa.distill.views import StepViews, TrainingViews

__all__ = [
    "Criterion",
    "DataFacts",
    "DistillStep",
    "Distiller",
    "HintAdapter",
    "KnowledgeRepresenting",
    "StepViews",
    "Teacher",
    "TrainingViews",
    "build_criterion",
    "build_teacher",
    "dynamic_temperature",
    "hint",
    "kd",
    "knowledge_adjustment",
    "load_teacher",
    "similarity_preserving",
    "topk_kd",
    "topk_mask",
]

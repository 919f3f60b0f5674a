"""Knowledge Representing: hand-computed terms, gradients to the student only, composition, validation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdforaa.config import DistillConfig
from kdforaa.distill.criterion import build_criterion
from kdforaa.distill.knowledge_representing import (
    KnowledgeRepresenting,
    aggregate_channels,
    representation_mismatch,
    sparse_recoding_penalty,
)
from kdforaa.distill.losses import topk_kd
from kdforaa.errors import BadInput

C = 10


def three_four_five() -> tuple[torch.Tensor, torch.Tensor]:
    """Student map (3, 4) on 2 channels of 1x1; teacher (2, 0, 0, 0) on 4 channels, groups (1, 0)."""
    student = torch.tensor([3.0, 4.0], dtype=torch.float64).reshape(1, 2, 1, 1).requires_grad_()
    teacher = torch.tensor([2.0, 0.0, 0.0, 0.0], dtype=torch.float64).reshape(1, 4, 1, 1)
    return student, teacher


def test_aggregate_channels_takes_group_means() -> None:
    x = torch.arange(2 * 6 * 2 * 3, dtype=torch.float64).reshape(2, 6, 2, 3)
    out = aggregate_channels(x, 3)
    assert out.shape == (2, 3, 2, 3)
    assert torch.equal(out[:, 1], (x[:, 2] + x[:, 3]) / 2)
    vectors = torch.tensor([[1.0, 3.0, 5.0, 7.0]])
    assert torch.equal(aggregate_channels(vectors, 2), torch.tensor([[2.0, 6.0]]))


def test_mismatch_by_hand() -> None:
    student, teacher = three_four_five()
    # n(s) = (0.6, 0.8), n(t) = (1, 0): (0.6 - 1)^2 + 0.8^2 = 0.8
    mismatch = representation_mismatch(student, aggregate_channels(teacher, 2))
    assert mismatch.tolist() == pytest.approx([0.8])
    # only the pattern counts, not the accumulated scale
    scaled = representation_mismatch(10 * student, aggregate_channels(teacher, 2))
    assert torch.allclose(scaled, mismatch)


def test_sparse_recoding_penalty_by_hand() -> None:
    student, teacher = three_four_five()
    mismatch = representation_mismatch(student, aggregate_channels(teacher, 2))
    penalty = sparse_recoding_penalty(mismatch, student)
    # dD/ds = 2 (n (n.t) - t) / |s| = 2 ((0.36, 0.48) - (1, 0)) / 5 = (-0.256, 0.192); L1 = 0.448
    assert penalty.item() == pytest.approx(0.448)
    (grad,) = torch.autograd.grad(penalty, student)  # the penalty is itself differentiable
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_sparse_penalty_is_batch_size_independent() -> None:
    student, teacher = three_four_five()
    twice = student.detach().repeat(2, 1, 1, 1).requires_grad_()
    mismatch = representation_mismatch(twice, aggregate_channels(teacher.repeat(2, 1, 1, 1), 2))
    assert sparse_recoding_penalty(mismatch, twice).item() == pytest.approx(0.448)


def test_sparse_penalty_needs_a_graph() -> None:
    with pytest.raises(ValueError, match="no gradient"):
        sparse_recoding_penalty(torch.zeros(2), torch.zeros(2, 3))


def test_module_sums_the_stages_and_resizes_the_student() -> None:
    g = torch.Generator().manual_seed(0)
    student = {
        "a": torch.randn(3, 4, 4, 4, generator=g, requires_grad=True),  # 4 channels = 4 groups: identity
        "b": torch.randn(3, 4, 2, 2, generator=g, requires_grad=True),  # half the teacher's size
    }
    teacher = {"a": torch.randn(3, 8, 4, 4, generator=g), "b": torch.randn(3, 8, 4, 4, generator=g)}
    kr = KnowledgeRepresenting({"a": 4, "b": 4}, ["a", "b"], groups=4)
    aggregation, penalty = kr(student, teacher)
    grown = F.interpolate(student["b"], size=(4, 4), mode="bilinear", align_corners=False)
    per_stage = [
        representation_mismatch(student["a"], aggregate_channels(teacher["a"], 4)),
        representation_mismatch(grown, aggregate_channels(teacher["b"], 4)),
    ]
    assert torch.allclose(aggregation, per_stage[0].mean() + per_stage[1].mean())
    expected = sum(sparse_recoding_penalty(m, student[s]) for m, s in zip(per_stage, "ab", strict=True))
    assert torch.allclose(penalty, expected)
    assert kr(student, teacher, sparse=False)[1] is None


class Tiny(nn.Module):
    """Two named stages and a linear head: enough to distil features and logits."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.stage2 = nn.Conv2d(1, width, 3, padding=1)
        self.stage3 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.fc = nn.Linear(2 * width, C)
        self.stage_channels = {"stage2": width, "stage3": 2 * width, "pooled": 2 * width}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        s2 = F.relu(self.stage2(x))
        s3 = F.relu(self.stage3(s2))
        return self.fc(s3.mean(dim=(2, 3))), {"stage2": s2, "stage3": s3}


def kr_setup(**distill):
    torch.manual_seed(0)
    student, teacher = Tiny(4), Tiny(8)
    cfg = DistillConfig(**{"kr": 1.0, "kr_sparse": 0.1, "kr_groups": 4, **distill})
    crit = build_criterion(
        cfg, C, student_channels=student.stage_channels, teacher_channels=teacher.stage_channels
    )
    x = torch.randn(16, 1, 8, 8)
    y = torch.randint(0, C, (16,))
    return student, teacher, crit, x, y


def test_composes_with_topk_kd() -> None:
    student, teacher, crit, x, y = kr_setup(method="topk_kd", k=3, weight=0.5)
    s_logits, s_feats = student(x)
    t_logits, t_feats = teacher(x)
    loss, terms = crit(s_logits, y, teacher_logits=t_logits, student_feats=s_feats, teacher_feats=t_feats)
    assert set(terms) == {"ce", "distill", "kr", "kr_sparse"}
    expected = (
        F.cross_entropy(s_logits, y)
        + 0.5 * topk_kd(s_logits, t_logits, 3)
        + terms["kr"]
        + 0.1 * terms["kr_sparse"]
    )
    assert torch.allclose(loss, expected)
    assert crit.needs_features and list(crit.terms) == ["distill", "kr"]
    assert crit.terms["kr"].stages == ["stage2", "stage3"]


def test_gradients_reach_the_student_only() -> None:
    student, teacher, crit, x, y = kr_setup(method="topk_kd", k=3)
    s_logits, s_feats = student(x)
    t_logits, t_feats = teacher(x)  # built with grad enabled: the criterion must cut it
    loss, _ = crit(s_logits, y, teacher_logits=t_logits, student_feats=s_feats, teacher_feats=t_feats)
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    assert all(p.grad is not None for p in crit.parameters())  # the KR adapters learn too


def test_few_steps_lower_the_loss() -> None:
    student, teacher, crit, x, y = kr_setup()
    teacher.requires_grad_(False)
    optimizer = torch.optim.SGD([*student.parameters(), *crit.parameters()], lr=0.1, momentum=0.9)
    t_logits, t_feats = teacher(x)
    losses = []
    for _ in range(30):
        s_logits, s_feats = student(x)
        loss, terms = crit(s_logits, y, teacher_logits=t_logits, student_feats=s_feats, teacher_feats=t_feats)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append((loss.item(), terms["kr"].item()))
    assert losses[-1][0] < 0.7 * losses[0][0]
    assert losses[-1][1] < 0.7 * losses[0][1]


@pytest.mark.parametrize(
    ("distill", "message"),
    [
        ({"kr_stages": ["stage9"]}, "available stages: stage2, stage3, pooled"),
        ({"kr_groups": 9}, "kr_groups=9 exceeds the teacher's 8 channels at stage stage2"),
        ({"kr_stages": []}, "kr_stages is empty"),
    ],
)
def test_bad_settings_are_bad_input(distill, message) -> None:
    with pytest.raises(ValueError, match=message):  # BadInput, or the config model's ValidationError
        kr_setup(**distill)


def test_kr_needs_stage_channels() -> None:
    with pytest.raises(BadInput, match="distill.kr_stages needs a student model that reports its stage"):
        build_criterion(DistillConfig(kr_sparse=1.0), C)


def test_off_by_default() -> None:
    crit = build_criterion(DistillConfig(), C, student_channels={"stage2": 4}, teacher_channels={"stage2": 8})
    assert "kr" not in crit.terms and not crit.needs_features


def test_half_precision_features_are_promoted() -> None:
    student, teacher, crit, x, y = kr_setup()
    s_logits, s_feats = student(x)
    _, t_feats = teacher(x)
    s_half = {k: v.bfloat16() for k, v in s_feats.items()}  # as under autocast: still in the graph
    t_half = {k: v.detach().half() for k, v in t_feats.items()}
    _, terms = crit(s_logits, y, student_feats=s_half, teacher_feats=t_half)
    assert terms["kr"].dtype == terms["kr_sparse"].dtype == torch.float32

"""The composite criterion (CE plus a weighted sum of terms), configured from YAML text exactly as a user
would write it (with a teacher checkpoint, which every distillation config needs)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import yaml

from kdforaa.config import DistillConfig, build_config
from kdforaa.distill.criterion import Criterion, build_criterion
from kdforaa.distill.losses import (
    dynamic_temperature,
    hint,
    kd,
    knowledge_adjustment,
    similarity_preserving,
    topk_kd,
)
from kdforaa.distill.terms import sp_stage
from kdforaa.errors import BadInput

B, C = 8, 10
STUDENT_CHANNELS = {"stem": 4, "stage1": 4, "stage2": 8, "stage3": 16, "pooled": 16}
TEACHER_CHANNELS = {"stem": 8, "stage1": 8, "stage2": 16, "stage3": 32, "pooled": 32}


def distill_config(text: str) -> DistillConfig:
    return build_config({**yaml.safe_load(text), "teacher": {"checkpoint": "teacher.pt"}}).distill


def criterion(text: str, **kwargs) -> Criterion:
    return build_criterion(distill_config(text), C, **kwargs)


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    student = torch.randn(B, C, generator=g, dtype=torch.float64, requires_grad=True)
    teacher = 3 * torch.randn(B, C, generator=g, dtype=torch.float64)
    labels = torch.randint(0, C, (B,), generator=g)
    return student, teacher, labels


def features(channels: dict[str, int], seed: int, size: int = 8) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    feats = {}
    for i, (stage, ch) in enumerate(channels.items()):
        side = max(1, size >> i)
        shape = (B, ch) if stage == "pooled" else (B, ch, side, side)
        feats[stage] = torch.randn(*shape, generator=g, requires_grad=True)
    return feats


def test_method_none_is_plain_cross_entropy() -> None:
    crit = criterion("distill: {method: none}")
    s, _, y = batch()
    loss, terms = crit(s, y)
    assert torch.equal(loss, F.cross_entropy(s, y))
    assert set(terms) == {"ce"}
    assert not crit.needs_features and len(crit.terms) == 0
    assert list(crit.parameters()) == []


def test_label_smoothing_reaches_the_cross_entropy() -> None:
    crit = build_criterion(DistillConfig(), C, label_smoothing=0.2)
    s, _, y = batch()
    assert torch.equal(crit(s, y)[0], F.cross_entropy(s, y, label_smoothing=0.2))


def test_kd_composition() -> None:
    crit = criterion("distill: {method: kd, weight: 0.9, ce_weight: 0.1, temperature: 4}")
    s, t, y = batch(1)
    loss, terms = crit(s, y, teacher_logits=t)
    expected = 0.1 * F.cross_entropy(s, y) + 0.9 * kd(s, t, 4.0)
    assert torch.allclose(loss, expected, rtol=1e-14)
    assert set(terms) == {"ce", "distill"} and not terms["distill"].requires_grad
    assert list(crit.terms) == ["distill"] and not crit.needs_features


def test_topk_kd_with_k_schedule_uses_per_sample_k() -> None:
    crit = criterion(
        """
        distill:
          method: topk_kd
          temperature: 2.0
          k_schedule: {0: 2, 5: 4, 10.5: 10}
        """
    )
    level = torch.tensor([0.0, 4.99, 5.0, 7.0, 10.4, 10.5, 15.0, 30.0])
    k = crit.terms["distill"].per_sample_k(level)
    assert k.tolist() == [2, 2, 4, 4, 4, 10, 10, 10]
    s, t, y = batch(2)
    loss, terms = crit(s, y, teacher_logits=t, level=level)
    assert torch.allclose(terms["distill"], topk_kd(s, t, k, 2.0), rtol=1e-14)
    assert torch.allclose(loss, F.cross_entropy(s, y) + 0.5 * topk_kd(s, t, k, 2.0), rtol=1e-14)
    # without levels (e.g. evaluation) distill.k applies
    assert crit.terms["distill"].per_sample_k(None) == 3


def test_topk_kd_without_schedule_uses_distill_k() -> None:
    crit = criterion("distill: {method: topk_kd, k: 5}")
    s, t, y = batch(3)
    _, terms = crit(s, y, teacher_logits=t, level=torch.full((B,), 9.0))
    assert torch.allclose(terms["distill"], topk_kd(s, t, 5, 1.0), rtol=1e-14)


def test_k_schedule_without_a_threshold_at_zero_is_bad_input() -> None:
    with pytest.raises(BadInput, match="threshold at level 0"):
        criterion("distill: {method: topk_kd, k_schedule: {3: 2, 10: 5}}")


def test_k_schedule_needs_topk_kd() -> None:
    with pytest.raises(BadInput, match="topk_kd"):
        criterion("distill: {method: kd, k_schedule: {0: 2}}")


def test_k_schedule_rejects_k_below_one() -> None:
    with pytest.raises(BadInput, match="k >= 1"):
        criterion("distill: {method: topk_kd, k_schedule: {0: 0}}")


def test_logit_options_need_a_logit_method() -> None:
    with pytest.raises(BadInput, match="method=kd or topk_kd"):
        criterion("distill: {method: none, adjust: shift}")


@pytest.mark.parametrize("mode", ["shift", "smooth"])
def test_knowledge_adjustment_then_topk_of_the_adjusted_distribution(mode: str) -> None:
    crit = criterion(f"distill: {{method: topk_kd, k: 3, temperature: 2.0, adjust: {mode}}}")
    s, t, y = batch(4)
    probs = knowledge_adjustment((t / 2.0).softmax(dim=1), y, mode=mode)
    # logits whose softmax at T=2 is the adjusted distribution
    expected = topk_kd(s, 2.0 * probs.log(), 3, 2.0)
    _, terms = crit(s, y, teacher_logits=t)
    assert torch.allclose(terms["distill"], expected, rtol=1e-12)
    if mode == "shift":  # the adjusted teacher ranks the true class first, so it is always in S
        assert torch.equal((2.0 * probs.log()).argmax(dim=1), y)


def test_knowledge_adjustment_leaves_correct_teachers_alone() -> None:
    s, t, y = batch(5)
    y = t.argmax(dim=1)  # the teacher is right everywhere
    plain = criterion("distill: {method: kd, temperature: 3}")(s, y, teacher_logits=t)[1]["distill"]
    adjusted = criterion("distill: {method: kd, temperature: 3, adjust: shift}")(s, y, teacher_logits=t)[1]
    assert torch.allclose(adjusted["distill"], plain, rtol=1e-12)


def test_knowledge_adjustment_survives_underflowing_teacher_probabilities() -> None:
    crit = build_criterion(distill_config("distill: {method: kd, temperature: 1, adjust: shift}"), 3)
    s = torch.zeros(2, 3, requires_grad=True)
    t = torch.tensor([[0.0, 1000.0, -1000.0], [0.0, -1000.0, 1000.0]])
    loss, terms = crit(s, torch.tensor([0, 0]), teacher_logits=t)
    loss.backward()
    assert torch.isfinite(terms["distill"]) and torch.isfinite(s.grad).all()


def test_dynamic_temperature_distillation() -> None:
    crit = criterion("distill: {method: kd, temperature: 4, dynamic_temperature: true}")
    s, t, y = batch(6)
    _, terms = crit(s, y, teacher_logits=t)
    expected = kd(s, t, dynamic_temperature(s, t, base=4.0))
    assert torch.allclose(terms["distill"], expected, rtol=1e-14)
    assert not torch.allclose(terms["distill"], kd(s, t, 4.0), rtol=1e-6)


def test_missing_teacher_logits_is_an_error() -> None:
    s, _, y = batch()
    with pytest.raises(ValueError, match="teacher_logits"):
        criterion("distill: {method: kd}")(s, y)


def test_mismatched_teacher_classes_is_an_error() -> None:
    s, _, y = batch()
    with pytest.raises(ValueError, match="do not match"):
        criterion("distill: {method: kd}")(s, y, teacher_logits=torch.zeros(B, C + 1))


def test_feature_terms_compose_and_train_the_adapters() -> None:
    crit = criterion(
        """
        distill:
          method: kd
          temperature: 4
          sp: 3000
          hints: {stage2: 0.5, stage3: 2.0}
        """,
        student_channels=STUDENT_CHANNELS,
        teacher_channels=TEACHER_CHANNELS,
    )
    assert crit.needs_features
    assert list(crit.terms) == ["distill", "sp", "hint_stage2", "hint_stage3"]
    s, t, y = batch(7)
    fs, ft = features(STUDENT_CHANNELS, 8), features(TEACHER_CHANNELS, 9, size=16)
    loss, terms = crit(s, y, teacher_logits=t, student_feats=fs, teacher_feats=ft)
    assert set(terms) == {"ce", "distill", "sp", "hint:stage2", "hint:stage3"}
    sp = similarity_preserving(fs["stage3"], ft["stage3"])  # the last stage before pooling
    h2 = hint(fs["stage2"], ft["stage2"], crit.terms["hint_stage2"].adapter)
    h3 = hint(fs["stage3"], ft["stage3"], crit.terms["hint_stage3"].adapter)
    expected = F.cross_entropy(s, y) + 0.5 * kd(s, t, 4.0) + 3000 * sp + 0.5 * h2 + 2.0 * h3
    assert torch.allclose(loss, expected.to(loss.dtype), rtol=1e-5)
    loss.backward()
    adapter_params = list(crit.parameters())
    assert adapter_params and all(p.grad is not None for p in adapter_params)
    assert all(v.grad is None for v in ft.values())


def test_multi_stage_hints_with_the_logit_term_by_hand() -> None:
    """Identity adapters (equal channels): stage1 MSE (1 - 3)^2 = 4; stage2 zeros grown 2x2 -> 4x4
    against ones = 1; equal logits: KD = 0 and CE = ln C. Loss = ln C + 0.5 * 4 + 2 * 1."""
    channels = {"stage1": 2, "stage2": 2}
    crit = criterion(
        "distill: {method: kd, temperature: 1, weight: 1.0, hints: {stage1: 0.5, stage2: 2.0}}",
        student_channels=channels,
        teacher_channels=channels,
    )
    assert list(crit.parameters()) == []
    logits, labels = torch.zeros(B, C, requires_grad=True), torch.zeros(B, dtype=torch.int64)
    student = {"stage1": torch.ones(B, 2, 2, 2), "stage2": torch.zeros(B, 2, 2, 2)}
    teacher = {"stage1": torch.full((B, 2, 2, 2), 3.0), "stage2": torch.ones(B, 2, 4, 4)}
    loss, terms = crit(
        logits, labels, teacher_logits=logits.detach(), student_feats=student, teacher_feats=teacher
    )
    assert terms["hint:stage1"].item() == pytest.approx(4.0)
    assert terms["hint:stage2"].item() == pytest.approx(1.0)
    assert terms["distill"].item() == pytest.approx(0.0, abs=1e-7)
    assert loss.item() == pytest.approx(math.log(C) + 0.5 * 4 + 2.0 * 1)


def test_sp_alone_needs_a_teacher_but_no_logit_term() -> None:
    crit = criterion("distill: {sp: 100}")
    assert crit.needs_features and list(crit.terms) == ["sp"]
    s, _, y = batch()
    fs, ft = features(STUDENT_CHANNELS, 10), features(TEACHER_CHANNELS, 11)
    _, terms = crit(s, y, student_feats=fs, teacher_feats=ft)
    assert set(terms) == {"ce", "sp"}
    with pytest.raises(ValueError, match="student_feats"):
        crit(s, y)


def test_half_precision_features_are_promoted() -> None:
    crit = criterion("distill: {sp: 1}")
    s, _, y = batch()
    fs = {k: v.detach().bfloat16() for k, v in features(STUDENT_CHANNELS, 12).items()}
    ft = {k: v.detach().half() for k, v in features(TEACHER_CHANNELS, 13).items()}
    _, terms = crit(s, y, student_feats=fs, teacher_feats=ft)
    assert terms["sp"].dtype == torch.float32


def test_sp_stage_is_the_last_before_pooling() -> None:
    assert sp_stage(STUDENT_CHANNELS) == "stage3"
    assert sp_stage(["pooled"]) == "pooled"


def test_hints_naming_unknown_stage_list_the_available_ones() -> None:
    with pytest.raises(BadInput, match="available stages: stem, stage1, stage2, stage3, pooled"):
        criterion(
            "distill: {hints: {stage9: 1.0}}",
            student_channels=STUDENT_CHANNELS,
            teacher_channels=TEACHER_CHANNELS,
        )


def test_hints_need_stage_channels() -> None:
    with pytest.raises(BadInput, match="stage channels"):
        criterion("distill: {hints: {stage1: 1.0}}")


def test_tiny_distillation_run_decreases_the_loss() -> None:
    """A linear student distils a fixed linear teacher with top-k KD for 50 SGD steps."""
    torch.manual_seed(0)
    crit = criterion("distill: {method: topk_kd, k: 3, weight: 1.0, ce_weight: 0.0, temperature: 2.0}")
    x = torch.randn(64, 20)
    teacher = torch.nn.Linear(20, C).requires_grad_(False)
    student = torch.nn.Linear(20, C)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.5)
    with torch.no_grad():
        t = teacher(x) * 3
    y = t.argmax(dim=1)
    losses = []
    for _ in range(50):
        loss, _ = crit(student(x), y, teacher_logits=t)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]
    # top-k KD constrains the student only within the teacher's top-k: there it learns the ranking
    top3 = t.topk(3, dim=1).indices
    within = top3.gather(1, student(x).gather(1, top3).argmax(dim=1, keepdim=True)).squeeze(1)
    assert (within == y).float().mean() > 0.8


def test_a_version_1_state_dict_loads_into_the_terms() -> None:
    """Checkpoints written before the criterion was a sum of terms kept the hint adapters under
    ``adapters.<stage>`` and KR under ``kr``: they load into the same weights."""
    text = "distill: {method: kd, hints: {stage2: 1.0}, kr: 1.0, kr_stages: [stage3]}"
    source = criterion(text, student_channels=STUDENT_CHANNELS, teacher_channels=TEACHER_CHANNELS)
    with torch.no_grad():
        for p in source.parameters():
            p.normal_()
    old = {}
    for key, value in source.state_dict().items():
        key = key.replace("terms.hint_stage2.adapter.", "adapters.stage2.").replace("terms.kr.module.", "kr.")
        old[key] = value
    old = type(source.state_dict())(old)
    old._metadata = {"": {"version": 1}}  # what nn.Module recorded before Criterion._version was 2
    target = criterion(text, student_channels=STUDENT_CHANNELS, teacher_channels=TEACHER_CHANNELS)
    target.load_state_dict(old)
    for (name, a), b in zip(source.state_dict().items(), target.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_include_label_adds_the_true_class_to_the_top_k():
    torch.manual_seed(0)
    s, t = torch.randn(6, 10, dtype=torch.float64), torch.randn(6, 10, dtype=torch.float64)
    labels = t.argmin(dim=1)  # never in the teacher's top-2
    crit = build_criterion(
        DistillConfig(method="topk_kd", k=2, include_label=True, weight=1.0, ce_weight=0.0), 10
    )
    loss, _ = crit(s, labels, teacher_logits=t)
    assert torch.allclose(loss, topk_kd(s, t, 2, 1.0, include_label=labels))
    assert not torch.allclose(loss, topk_kd(s, t, 2, 1.0))

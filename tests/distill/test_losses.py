"""Each loss against a plainly written reference formula (explicit loops over samples), in float64."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kdforaa.distill.losses import (
    MIN_TEMPERATURE,
    HintAdapter,
    dynamic_temperature,
    hint,
    kd,
    knowledge_adjustment,
    similarity_preserving,
    topk_kd,
)

B, C = 6, 10


def logits(seed: int, rows: int = B, cols: int = C, scale: float = 3.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, cols, generator=g, dtype=torch.float64) * scale


def ref_kl(p: list[float], q: list[float]) -> float:
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))


def ref_softmax(z: list[float], temperature: float) -> list[float]:
    exps = [math.exp(v / temperature) for v in z]
    return [e / sum(exps) for e in exps]


def ref_kd_sample(s: list[float], t: list[float], temperature: float, classes: list[int]) -> float:
    """T² · KL over the given classes only, both softmaxes renormalised over them."""
    p = ref_softmax([t[c] for c in classes], temperature)
    q = ref_softmax([s[c] for c in classes], temperature)
    return temperature**2 * ref_kl(p, q)


def ref_topk_classes(t: list[float], k: int) -> list[int]:
    return sorted(range(len(t)), key=lambda c: -t[c])[:k]


# ------------------------------------------------------------------------------------------------ kd


def test_kd_matches_reference_formula() -> None:
    s, t = logits(0), logits(1)
    per_sample = [ref_kd_sample(s[i].tolist(), t[i].tolist(), 4.0, list(range(C))) for i in range(B)]
    assert kd(s, t, 4.0).item() == pytest.approx(sum(per_sample) / B, rel=1e-12)
    assert kd(s, t, 4.0, reduction="none").tolist() == pytest.approx(per_sample, rel=1e-12)


def test_kd_per_sample_temperature_scales_each_sample_by_its_own_t_squared() -> None:
    s, t = logits(2), logits(3)
    temps = torch.tensor([0.5, 1.0, 2.0, 3.0, 4.0, 8.0], dtype=torch.float64)
    expected = [
        ref_kd_sample(s[i].tolist(), t[i].tolist(), float(temps[i]), list(range(C))) for i in range(B)
    ]
    assert kd(s, t, temps, reduction="none").tolist() == pytest.approx(expected, rel=1e-12)
    assert kd(s, t, temps).item() == pytest.approx(sum(expected) / B, rel=1e-12)


def test_kd_is_zero_when_student_equals_teacher() -> None:
    t = logits(4)
    assert kd(t.clone(), t, 2.0).item() == pytest.approx(0.0, abs=1e-14)


def test_unknown_reduction_is_rejected() -> None:
    with pytest.raises(ValueError, match="reduction"):
        kd(logits(0), logits(1), reduction="sum")


# -------------------------------------------------------------------------------------------- top-k


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_topk_kd_matches_reference_formula(k: int, temperature: float) -> None:
    s, t = logits(5), logits(6)
    expected = [
        ref_kd_sample(s[i].tolist(), t[i].tolist(), temperature, ref_topk_classes(t[i].tolist(), k))
        for i in range(B)
    ]
    got = topk_kd(s, t, k=k, temperature=temperature, reduction="none")
    assert got.tolist() == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert topk_kd(s, t, k=k, temperature=temperature).item() == pytest.approx(sum(expected) / B, rel=1e-12)


@pytest.mark.parametrize("k", [None, C, C + 3])
def test_topk_kd_with_all_classes_equals_kd_exactly(k: int | None) -> None:
    s, t = logits(7), logits(8)
    assert torch.equal(topk_kd(s, t, k=k, temperature=3.0), kd(s, t, 3.0))


def ref_merged_tail_sample(s: list[float], t: list[float], temperature: float, k: int) -> float:
    """T² · KL over the top-k classes plus one bin with the rest, softmaxes not renormalised."""
    p, q = ref_softmax(t, temperature), ref_softmax(s, temperature)
    top = ref_topk_classes(t, k)
    rest = [c for c in range(len(t)) if c not in top]
    p_bins = [p[c] for c in top] + ([sum(p[c] for c in rest)] if rest else [])
    q_bins = [q[c] for c in top] + ([sum(q[c] for c in rest)] if rest else [])
    return temperature**2 * ref_kl(p_bins, q_bins)


@pytest.mark.parametrize("k", [1, 3, 9])
def test_topk_kd_merged_tail_matches_reference_formula(k: int) -> None:
    s, t = logits(25), logits(26)
    expected = [ref_merged_tail_sample(s[i].tolist(), t[i].tolist(), 2.0, k) for i in range(B)]
    got = topk_kd(s, t, k=k, temperature=2.0, reduction="none", tail="merge")
    assert got.tolist() == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_topk_kd_merged_tail_with_every_class_is_kd_and_has_finite_gradients() -> None:
    s, t = logits(27).requires_grad_(), logits(28)
    k = torch.tensor([C, 2, C, 5, 1, C])  # rows without a tail next to rows with one
    loss = topk_kd(s, t, k=k, temperature=3.0, reduction="none", tail="merge")
    full = kd(s, t, 3.0, reduction="none")
    assert loss[0].item() == pytest.approx(full[0].item(), rel=1e-12)
    loss.sum().backward()
    assert torch.isfinite(s.grad).all()
    assert torch.equal(topk_kd(s, t, k=None, temperature=3.0, tail="merge"), kd(s, t, 3.0))


def test_topk_kd_per_sample_k() -> None:
    s, t = logits(9), logits(10)
    ks = torch.tensor([1, 2, 3, 5, C, C + 4])
    expected = [
        ref_kd_sample(s[i].tolist(), t[i].tolist(), 2.0, ref_topk_classes(t[i].tolist(), int(ks[i])))
        for i in range(B)
    ]
    got = topk_kd(s, t, k=ks, temperature=2.0, reduction="none")
    assert got.tolist() == pytest.approx(expected, rel=1e-12, abs=1e-15)
    # the rows with k >= C are Hinton KD, bit for bit
    assert torch.equal(got[4:], kd(s, t, 2.0, reduction="none")[4:])


def test_topk_kd_per_sample_k_and_temperature_together() -> None:
    s, t = logits(11), logits(12)
    ks = torch.tensor([2, 2, 4, 4, 7, 7])
    temps = torch.tensor([1.0, 3.0, 1.0, 3.0, 1.0, 3.0], dtype=torch.float64)
    expected = [
        ref_kd_sample(
            s[i].tolist(), t[i].tolist(), float(temps[i]), ref_topk_classes(t[i].tolist(), int(ks[i]))
        )
        for i in range(B)
    ]
    assert topk_kd(s, t, ks, temps, reduction="none").tolist() == pytest.approx(
        expected, rel=1e-12, abs=1e-15
    )


def test_topk_kd_include_label_adds_the_true_class() -> None:
    s, t = logits(13), logits(14)
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    expected = []
    for i in range(B):
        classes = ref_topk_classes(t[i].tolist(), 2)
        classes = classes + ([int(labels[i])] if int(labels[i]) not in classes else [])
        expected.append(ref_kd_sample(s[i].tolist(), t[i].tolist(), 1.0, classes))
    got = topk_kd(s, t, k=2, include_label=labels, reduction="none")
    assert got.tolist() == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_topk_kd_ignores_classes_outside_the_teacher_top_k() -> None:
    s, t = logits(15), logits(16)
    top3 = t.topk(3, dim=1).indices
    outside = torch.ones_like(s, dtype=torch.bool).scatter(1, top3, False)
    s_changed = s.masked_fill(outside, -50.0)
    assert torch.allclose(topk_kd(s, t, k=3), topk_kd(s_changed, t, k=3), rtol=1e-12)


def test_topk_kd_rejects_k_below_one() -> None:
    with pytest.raises(ValueError, match="k >= 1"):
        topk_kd(logits(0), logits(1), k=torch.tensor([1, 0, 2, 2, 2, 2]))


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(1, 5),
    cols=st.integers(2, 12),
    k=st.integers(1, 14),
    temperature=st.floats(0.3, 8.0),
    seed=st.integers(0, 2**16),
)
def test_topk_kd_is_nonnegative_and_finite(
    rows: int, cols: int, k: int, temperature: float, seed: int
) -> None:
    s, t = logits(seed, rows, cols, scale=20.0), logits(seed + 1, rows, cols, scale=20.0)
    value = topk_kd(s, t, k=k, temperature=temperature, reduction="none")
    assert value.shape == (rows,)
    assert torch.isfinite(value).all()
    assert (value >= -1e-12).all()
    if k >= cols:
        assert torch.equal(value, kd(s, t, temperature, reduction="none"))


# ------------------------------------------------------------------------------- gradients


def test_gradcheck_kd_topk_kd_and_sp() -> None:
    s = logits(17, 3, 5).requires_grad_()
    t = logits(18, 3, 5)
    temps = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: kd(x, t, 4.0), (s,))
    assert torch.autograd.gradcheck(lambda x: kd(x, t, temps), (s,))
    assert torch.autograd.gradcheck(lambda x: topk_kd(x, t, k=2, temperature=2.0), (s,))
    assert torch.autograd.gradcheck(lambda x: topk_kd(x, t, k=2, temperature=2.0, tail="merge"), (s,))
    assert torch.autograd.gradcheck(
        lambda x: topk_kd(x, t, k=torch.tensor([1, 3, 5]), temperature=temps), (s,)
    )
    fs = torch.randn(
        3, 2, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    ).requires_grad_()
    ft = torch.randn(3, 4, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert torch.autograd.gradcheck(lambda x: similarity_preserving(x, ft), (fs,))


@pytest.mark.parametrize(
    "loss",
    [
        lambda s, t: kd(s, t, 4.0),
        lambda s, t: topk_kd(s, t, k=3),
        lambda s, t: topk_kd(s, t, k=torch.tensor([1, 2, 3, 4, 5, 6]), temperature=2.0),
        lambda s, t: similarity_preserving(s, t),
        lambda s, t: hint(s, t),
    ],
)
def test_gradients_reach_the_student_only(loss) -> None:
    s = logits(19).requires_grad_()
    t = logits(20).requires_grad_()
    loss(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


# --------------------------------------------------------------------------- knowledge adjustment


def test_knowledge_adjustment_shift_swaps_label_and_max_where_wrong() -> None:
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], dtype=torch.float64)
    labels = torch.tensor([1, 0, 0])
    adjusted = knowledge_adjustment(probs, labels, mode="shift")
    expected = torch.tensor([[0.2, 0.7, 0.1], [0.7, 0.2, 0.1], [0.6, 0.3, 0.1]], dtype=torch.float64)
    assert torch.equal(adjusted, expected)


def test_knowledge_adjustment_smooth_replaces_wrong_rows_with_label_smoothing() -> None:
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype=torch.float64)
    labels = torch.tensor([2, 2])
    adjusted = knowledge_adjustment(probs, labels, mode="smooth", smoothing=0.1)
    assert adjusted[0].tolist() == pytest.approx([0.05, 0.05, 0.9], abs=1e-15)
    assert torch.equal(adjusted[1], probs[1])


def test_knowledge_adjustment_fixes_every_argmax_and_keeps_the_mass() -> None:
    probs = logits(21).softmax(dim=1)
    labels = torch.arange(B) % C
    for mode in ("shift", "smooth"):
        adjusted = knowledge_adjustment(probs, labels, mode=mode)
        assert torch.equal(adjusted.argmax(dim=1), labels)
        assert torch.allclose(adjusted.sum(dim=1), torch.ones(B, dtype=torch.float64), atol=1e-12)
    shifted = knowledge_adjustment(probs, labels, mode="shift")
    assert torch.equal(shifted.sort(dim=1).values, probs.sort(dim=1).values)  # a permutation per row


def test_knowledge_adjustment_rejects_unknown_mode() -> None:
    with pytest.raises(ValueError, match="mode"):
        knowledge_adjustment(torch.full((1, 2), 0.5), torch.tensor([0]), mode="flip")


# ------------------------------------------------------------------------------ dynamic temperature


@pytest.mark.parametrize(("weight", "beta"), [("cosine", 1.0), ("cosine", 3.0), ("confidence", 0.1)])
def test_dynamic_temperature_mean_equals_base(weight: str, beta: float) -> None:
    s, t = logits(22, 32, C), logits(23, 32, C)
    temps = dynamic_temperature(s, t, base=4.0, beta=beta, gamma=2.0, weight=weight)
    assert temps.shape == (32,)
    assert temps.mean().item() == pytest.approx(4.0, abs=1e-12)
    assert not temps.requires_grad


def test_dynamic_temperature_matches_formula_and_cools_confused_samples() -> None:
    t = logits(24)
    s = t.clone()
    s[0] = -t[0]  # student disagrees with the teacher on sample 0 only
    temps = dynamic_temperature(s, t, base=4.0, beta=1.5, gamma=2.0)
    w = []
    for i in range(B):
        p, q = ref_softmax(s[i].tolist(), 1.0), ref_softmax(t[i].tolist(), 1.0)
        cos = sum(a * b for a, b in zip(p, q, strict=True)) / math.sqrt(
            sum(a * a for a in p) * sum(b * b for b in q)
        )
        w.append((1 - cos) ** 2)
    expected = [4.0 + (sum(w) / B - wi) * 1.5 for wi in w]
    assert temps.tolist() == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert temps[0] == temps.min() and temps[0] < 4.0


def test_dynamic_temperature_confidence_weight_formula() -> None:
    s, t = logits(25), logits(26)
    w = [1.0 / (max(ref_softmax(t[i].tolist(), 1.0)) + 1e-3) for i in range(B)]
    expected = [2.0 + (sum(w) / B - wi) * 0.05 for wi in w]
    got = dynamic_temperature(s, t, base=2.0, beta=0.05, weight="confidence")
    assert got.tolist() == pytest.approx(expected, rel=1e-12)


def test_dynamic_temperature_clamps_to_a_positive_minimum() -> None:
    t = logits(27)
    s = t.clone()
    s[0] = -t[0]
    temps = dynamic_temperature(s, t, base=0.2, beta=10.0, gamma=1.0)
    assert temps.min().item() == MIN_TEMPERATURE
    assert (temps > 0).all()


def test_dynamic_temperature_carries_no_gradient() -> None:
    s = logits(28).requires_grad_()
    assert not dynamic_temperature(s, logits(29)).requires_grad


# ------------------------------------------------------------------------ similarity preserving


def test_similarity_preserving_hand_computed() -> None:
    student = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)  # G_s = I
    teacher = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)  # G_t = all ones
    r = 1 / math.sqrt(2)
    expected = 2 * ((1 - r) ** 2 + r**2) / 4
    assert similarity_preserving(student, teacher).item() == pytest.approx(expected, rel=1e-14)


def test_similarity_preserving_matches_reference_with_different_shapes() -> None:
    g = torch.Generator().manual_seed(30)
    fs = torch.randn(4, 3, 2, 2, dtype=torch.float64, generator=g)
    ft = torch.randn(4, 5, 3, 3, dtype=torch.float64, generator=g)

    def ref_gram(f: torch.Tensor) -> list[list[float]]:
        q = [row.flatten().tolist() for row in f]
        gram = [[sum(a * b for a, b in zip(qi, qj, strict=True)) for qj in q] for qi in q]
        return [[v / math.sqrt(sum(x * x for x in row)) for v in row] for row in gram]

    gs, gt = ref_gram(fs), ref_gram(ft)
    expected = sum((gs[i][j] - gt[i][j]) ** 2 for i in range(4) for j in range(4)) / 16
    assert similarity_preserving(fs, ft).item() == pytest.approx(expected, rel=1e-12)


def test_similarity_preserving_is_zero_for_rescaled_features() -> None:
    f = torch.randn(5, 4, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(31))
    assert similarity_preserving(3.0 * f, f).item() == pytest.approx(0.0, abs=1e-14)


# ------------------------------------------------------------------------------------------- hints


def test_hint_hand_computed() -> None:
    student = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    teacher = torch.zeros(1, 1, 2, 2)
    assert hint(student, teacher).item() == pytest.approx((1 + 4 + 9 + 16) / 4)
    two = torch.cat([student, 2 * student])
    assert hint(two, torch.zeros(2, 1, 2, 2), reduction="none").tolist() == pytest.approx([7.5, 30.0])


def test_hint_without_adapter_needs_matching_shapes() -> None:
    with pytest.raises(ValueError, match="HintAdapter"):
        hint(torch.zeros(2, 3, 4, 4), torch.zeros(2, 5, 4, 4))


def test_hint_adapter_is_identity_for_equal_channels_and_sizes() -> None:
    adapter = HintAdapter(4, 4)
    x = torch.randn(2, 4, 3, 3)
    assert list(adapter.parameters()) == []
    assert torch.equal(adapter(x, (3, 3)), x)


@pytest.mark.parametrize(("student_channels", "teacher_channels"), [(3, 6), (3, 3)])
@pytest.mark.parametrize(("student_size", "teacher_size"), [(8, 4), (4, 8), (5, 5)])
def test_hint_adapter_maps_channels_and_size(
    student_channels: int, teacher_channels: int, student_size: int, teacher_size: int
) -> None:
    adapter = HintAdapter(student_channels, teacher_channels)
    student = torch.randn(2, student_channels, student_size, student_size, requires_grad=True)
    teacher = torch.randn(2, teacher_channels, teacher_size, teacher_size)
    loss = hint(student, teacher, adapter)
    loss.backward()
    assert adapter(student, (teacher_size, teacher_size)).shape == teacher.shape
    assert student.grad is not None
    assert all(p.grad is not None for p in adapter.parameters())
    assert bool(list(adapter.parameters())) == (student_channels != teacher_channels)


def test_hint_adapter_shrinks_by_average_pooling() -> None:
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    pooled = HintAdapter(1, 1)(x, (2, 2))
    assert pooled.flatten().tolist() == [2.5, 4.5, 10.5, 12.5]


def test_hint_adapter_projects_pooled_vectors() -> None:
    adapter = HintAdapter(8, 16)
    assert adapter(torch.randn(4, 8), (1, 1)).shape == (4, 16)

"""Distillation losses: pure functions on logits and features, knowing nothing about training.

Every loss detaches its teacher inputs, so gradients reach the student only. Logit losses return the
batch mean, or the ``(B,)`` per-sample values with ``reduction="none"``; they are exact in float64.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from kdforaa.config import DEFAULT_TEMPERATURE, DEFAULT_TOP_K
from kdforaa.errors import BadInput

Reduction = Literal["mean", "none"]
Temperature = float | torch.Tensor

#: Smallest temperature :func:`dynamic_temperature` hands out (a softmax at T <= 0 is undefined).
MIN_TEMPERATURE = 0.05


def _reduce(per_sample: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    if reduction == "none":
        return per_sample
    if reduction == "mean":
        return per_sample.mean()
    raise BadInput(f"reduction must be 'mean' or 'none', got {reduction!r}")


def _per_row(temperature: Temperature, like: torch.Tensor) -> torch.Tensor:
    """A float or ``(B,)`` temperature as a ``(B,1)`` tensor that broadcasts over the classes."""
    t = torch.as_tensor(temperature, dtype=like.dtype, device=like.device)
    return t.reshape(-1, 1) if t.dim() else t.expand(like.shape[0], 1)


def _masked_log_softmax(scaled: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Log-softmax renormalised over the classes where ``mask`` is True (all classes when None).

    One code path for both cases, so a full mask gives bit-identical results to no mask. Entries
    outside the mask stay finite (and meaningless), so that no ``-inf - -inf`` ever reaches autograd;
    callers zero them out.
    """
    kept = scaled if mask is None else scaled.masked_fill(~mask, float("-inf"))
    return scaled - kept.logsumexp(dim=1, keepdim=True)


def _tempered_kl(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: Temperature,
    mask: torch.Tensor | None,
) -> torch.Tensor:
    """``T² · KL(p_t ‖ p_s)`` per sample, both softmaxes at temperature T and restricted to ``mask``: (B,)."""
    t = _per_row(temperature, student_logits)
    log_p_s = _masked_log_softmax(student_logits / t, mask)
    log_p_t = _masked_log_softmax(teacher_logits.detach() / t, mask)
    terms = log_p_t.exp() * (log_p_t - log_p_s)
    if mask is not None:
        terms = terms.masked_fill(~mask, 0.0)
    return t.squeeze(1) ** 2 * terms.sum(dim=1)


def kd(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: Temperature = DEFAULT_TEMPERATURE,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Hinton's distillation loss ``T² · KL(softmax(t/T) ‖ softmax(s/T))``.

    ``student_logits``, ``teacher_logits``: (B,C) float. ``temperature``: a float, or a (B,) tensor of
    per-sample temperatures (each sample is then scaled by its own T², as in dynamic temperature
    distillation). The T² factor keeps gradient magnitudes independent of T.
    """
    return _reduce(_tempered_kl(student_logits, teacher_logits, temperature, None), reduction)


def topk_mask(
    teacher_logits: torch.Tensor, k: int | torch.Tensor | None, labels: torch.Tensor | None = None
) -> torch.Tensor | None:
    """(B,C) bool mask of each sample's teacher top-k classes (plus its label when ``labels`` is given).

    ``k`` is an int or a (B,) int tensor; ``None`` (or k >= C everywhere) keeps every class and returns
    None. Ties between equal teacher logits are broken towards the lower class index.
    """
    num_classes = teacher_logits.shape[1]
    if k is None:
        return None
    k = torch.as_tensor(k, device=teacher_logits.device)
    if bool((k <= 0).any()):
        raise BadInput(f"topk_kd needs k >= 1, got {k.tolist()}")
    if bool((k >= num_classes).all()):
        return None
    order = teacher_logits.detach().argsort(dim=1, descending=True, stable=True)
    ranks = order.argsort(dim=1)
    mask = ranks < k.reshape(-1, 1)
    if labels is not None:
        mask = mask | F.one_hot(labels, num_classes).bool()
    return mask


def _merged_tail_kl(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: Temperature, mask: torch.Tensor
) -> torch.Tensor:
    """``T² · KL`` over the classes in ``mask`` plus one bin holding the rest of each softmax: (B,)."""
    t = _per_row(temperature, student_logits)
    log_p_s = (student_logits / t).log_softmax(dim=1)
    log_p_t = (teacher_logits.detach() / t).log_softmax(dim=1)
    kept = (log_p_t.exp() * (log_p_t - log_p_s)).masked_fill(~mask, 0.0).sum(dim=1)
    # a sample whose mask holds every class has no tail bin; its row is zeroed before the logsumexp
    # so that no -inf - -inf reaches autograd, and its bin is dropped afterwards
    has_tail = ~mask.all(dim=1, keepdim=True)

    def tail_log_mass(log_p: torch.Tensor) -> torch.Tensor:
        return torch.where(has_tail, log_p.masked_fill(mask, float("-inf")), 0.0).logsumexp(dim=1)

    rest_s, rest_t = tail_log_mass(log_p_s), tail_log_mass(log_p_t)
    rest = torch.where(has_tail.squeeze(1), rest_t.exp() * (rest_t - rest_s), 0.0)
    return t.squeeze(1) ** 2 * (kept + rest)


def topk_kd(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    k: int | torch.Tensor | None = DEFAULT_TOP_K,
    temperature: Temperature = DEFAULT_TEMPERATURE,
    reduction: Reduction = "mean",
    *,
    include_label: torch.Tensor | None = None,
    tail: Literal["drop", "merge"] = "drop",
) -> torch.Tensor:
    """KDforAA's loss: distil only over the teacher's top-k classes of each (augmented) sample.

    For each sample, S = the k classes with the largest teacher logits; both softmaxes (at temperature
    T) are renormalised over S and the loss is ``T² · KL(p_t^S ‖ p_s^S)``. The rest of the teacher's
    distribution on an outlier image is mostly noise, so it is left out.

    ``tail="merge"`` (our variant, beyond the paper) keeps the softmaxes unrenormalised and adds one bin
    holding the mass outside S: the shape of the teacher's tail is still ignored, but the student must
    put as little mass there as the teacher does (with ``"drop"`` only the CE term constrains it).

    ``student_logits``, ``teacher_logits``: (B,C) float. ``k``: int, (B,) int tensor (per-sample k,
    e.g. growing with the augmentation magnitude), or None; ``k >= C`` is exactly :func:`kd`.
    ``temperature``: float or (B,). ``include_label``: (B,) int64 labels whose class is added to S.
    """
    if tail not in ("drop", "merge"):
        raise BadInput(f"tail must be 'drop' or 'merge', got {tail!r}")
    mask = topk_mask(teacher_logits, k, include_label)
    if tail == "merge" and mask is not None:
        return _reduce(_merged_tail_kl(student_logits, teacher_logits, temperature, mask), reduction)
    return _reduce(_tempered_kl(student_logits, teacher_logits, temperature, mask), reduction)


def knowledge_adjustment(
    teacher_probs: torch.Tensor,
    labels: torch.Tensor,
    mode: Literal["shift", "smooth"] = "shift",
    smoothing: float = 0.1,
) -> torch.Tensor:
    """Correct the teacher's soft targets on the samples it gets wrong (Knowledge Adjustment).

    ``teacher_probs``: (B,C) probabilities; ``labels``: (B,) int64. Where the teacher's argmax is not
    the label, ``"shift"`` swaps the label's probability with the maximum one (the argmax becomes right,
    the rest of the "dark knowledge" is kept); ``"smooth"`` replaces the row with a label-smoothing
    target (``1 - smoothing`` on the label, ``smoothing / (C-1)`` on each other class). Rows where the
    teacher is right are returned unchanged. Returns (B,C), detached.
    """
    probs = teacher_probs.detach()
    num_classes = probs.shape[1]
    top_prob, top_class = probs.max(dim=1)
    wrong = (top_class != labels).unsqueeze(1)
    if mode == "shift":
        label_prob = probs.gather(1, labels.unsqueeze(1))
        adjusted = probs.scatter(1, top_class.unsqueeze(1), label_prob)
        adjusted = adjusted.scatter(1, labels.unsqueeze(1), top_prob.unsqueeze(1))
    elif mode == "smooth":
        if not 0.0 <= smoothing < 1.0:
            raise BadInput(f"smoothing must be in [0, 1), got {smoothing}")
        off = smoothing / (num_classes - 1) if num_classes > 1 else 0.0
        adjusted = torch.full_like(probs, off).scatter(1, labels.unsqueeze(1), 1.0 - smoothing)
    else:
        raise BadInput(f"mode must be 'shift' or 'smooth', got {mode!r}")
    return torch.where(wrong, adjusted, probs)


def dynamic_temperature(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    base: float = 4.0,
    beta: float = 1.0,
    gamma: float = 2.0,
    weight: Literal["cosine", "confidence"] = "cosine",
) -> torch.Tensor:
    """Per-sample temperatures of Dynamic Temperature Distillation: ``τ_i = base + (mean_j w_j − w_i)·β``.

    ``w_i`` measures how confusing sample i is: ``"cosine"``: ``(1 − cos(softmax s_i, softmax t_i))^γ``
    (in [0, 1], large where student and teacher disagree); ``"confidence"``: ``1 / (max_c p_t,c + 1e-3)``
    (in [1, C], large where the teacher is unsure). Samples above the batch's mean confusion get a lower
    temperature (sharper targets), the others a higher one; the batch mean of τ is ``base``.

    Defaults: ``base = 4`` (the usual CIFAR KD temperature), ``γ = 2`` and ``β = 1`` (TextBrewer's
    documented example for this scheduler; we did not find the paper's own values). With the cosine
    weight ``|τ_i − base| <= β``, so no clamping happens while ``base − β >= MIN_TEMPERATURE``. The
    confidence weight spans [1, C]: scale β down (e.g. ``1/C``). Temperatures are clamped at
    :data:`MIN_TEMPERATURE`, and clamping raises the batch mean above ``base``.

    ``student_logits``, ``teacher_logits``: (B,C). Returns (B,) temperatures, without gradient.
    """
    with torch.no_grad():
        p_t = teacher_logits.detach().softmax(dim=1)
        if weight == "cosine":
            p_s = student_logits.detach().softmax(dim=1)
            w = (1.0 - F.cosine_similarity(p_s, p_t, dim=1)).clamp_min(0.0) ** gamma
        elif weight == "confidence":
            w = 1.0 / (p_t.max(dim=1).values + 1e-3)
        else:
            raise BadInput(f"weight must be 'cosine' or 'confidence', got {weight!r}")
        return (base + (w.mean() - w) * beta).clamp_min(MIN_TEMPERATURE)


def _normalised_gram(features: torch.Tensor) -> torch.Tensor:
    q = features.reshape(features.shape[0], -1)
    return F.normalize(q @ q.T, dim=1)


def similarity_preserving(student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    """Similarity-preserving loss (Tung & Mori 2019): ``‖norm(G_s) − norm(G_t)‖²_F / B²``.

    ``G = Q Qᵀ`` is the (B,B) Gram matrix of the flattened features Q (B, C·H·W), each row L2-normalised.
    Student and teacher may differ in channels and spatial size: only which samples look alike has to
    match. It is a batch-level loss, so it has no per-sample reduction. Returns a scalar.
    """
    batch = student_feat.shape[0]
    diff = _normalised_gram(student_feat) - _normalised_gram(teacher_feat.detach())
    return diff.pow(2).sum() / batch**2


class HintAdapter(nn.Module):
    """Maps student features onto the teacher's shape for a FitNets hint: (B,Cs,h,w) -> (B,Ct,H,W).

    A 1×1 convolution + BatchNorm when the channel counts differ (identity otherwise); then, when the
    spatial sizes differ, adaptive average pooling (shrinking) or bilinear interpolation (growing).
    Pooled (B,Cs) vectors are projected the same way, as 1×1 maps. Its parameters are learned with
    the student's.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.project: nn.Module = (
            nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
            if in_channels != out_channels
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor, size: tuple[int, int] | torch.Size | None = None) -> torch.Tensor:
        """``x``: (B,Cs,h,w) or (B,Cs); ``size``: the teacher's (H, W), ignored for (B,Cs) vectors."""
        if x.dim() == 2:
            return self.project(x[:, :, None, None]).flatten(1)
        x = self.project(x)
        if size is None or tuple(x.shape[-2:]) == tuple(size):
            return x
        height, width = size[0], size[1]
        if x.shape[-2] >= height and x.shape[-1] >= width:
            return F.adaptive_avg_pool2d(x, (height, width))
        return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)


def hint(
    student_feat: torch.Tensor,
    teacher_feat: torch.Tensor,
    adapter: HintAdapter | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """FitNets hint: mean squared error between (adapted) student and teacher features.

    ``student_feat``: (B,...) float; ``teacher_feat``: (B,...) float of the shape the adapter produces
    (the student's own shape when ``adapter`` is None). With ``reduction="none"``: the (B,) per-sample
    means, whose mean is the scalar loss.
    """
    target = teacher_feat.detach()
    if adapter is not None:
        student_feat = adapter(student_feat, target.shape[-2:])
    if student_feat.shape != target.shape:
        raise BadInput(
            f"hint: student features {tuple(student_feat.shape)} do not match teacher features "
            f"{tuple(target.shape)}; pass a HintAdapter(student_channels, teacher_channels)"
        )
    per_sample = (student_feat - target).pow(2).reshape(target.shape[0], -1).mean(dim=1)
    return _reduce(per_sample, reduction)

"""Knowledge Representing (KR; Liu et al., CVPRW 2019, arXiv 1911.05329): our reading, as two terms.

The paper's abstract names two parts and gives no formulas we could check (its body was not available
to us), so both are our concrete reading; docs/design-notes.md ("Knowledge Representing: our reading")
keeps the same list.

**(a) Knowledge aggregation** (``distill.kr``). "The parameter distribution of the teacher, aggregated
to a more abstract level." A network's parameters reach the data only through the activations they
produce, and students differ from teachers in width, so we represent a stage's parameters by its
*responses*: each teacher stage map (B,Ct,H,W) is averaged over ``G = distill.kr_groups`` contiguous
channel groups (adaptive pooling over channels; exact group means when G divides Ct) to (B,G,H,W),
a coarser, more abstract map. The student's stage goes through a learned :class:`HintAdapter` (1×1
conv + BN onto G channels, resized to the teacher's H×W), and both are L2-normalised per sample
before the squared distance: deep residual stages accumulate the outputs of every earlier block, so
their magnitude grows with depth and differs between a deep teacher and a shallow student; the
normalisation compares patterns, not accumulated scale, which is how we read "alleviates residual
accumulation in the deeper layers". Per sample ``D_b = ‖n(A_s) − n(A_t)‖²`` (in [0, 4]); the term is
the batch mean, summed over ``distill.kr_stages`` (default stage2 and stage3, the deep ones).

**(b) Sparse recoding penalty** (``distill.kr_sparse``). "The student learns with penalised
gradients, avoiding over-regularisation." We penalise the L1 norm of the gradient that term (a)
sends into the student's own stage activations ``a`` (before the adapter):
``P = (1/B)·‖∂(Σ_b D_b)/∂a‖₁``, computed with ``create_graph=True`` so that P itself is minimised.
The squared term pulls on every unit in proportion to its deviation (a dense gradient); the L1
penalty on that gradient is the classic sparsity prior, so the student is pushed to states where
the teacher's knowledge pulls on few units: it matches the abstract maps exactly where it can and
leaves the rest (what a student of limited capacity cannot represent) alone instead of being
regularised towards it everywhere. The sum over the batch (not the mean) keeps P independent of the
batch size. P is computed from the unweighted D, so it does not depend on ``distill.kr``.

Both terms read teacher features detached: gradients reach the student (and its adapters) only.
Both compose with the logit terms (kd, topk_kd) and with SP and hints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from kdforaa.distill.losses import HintAdapter
from kdforaa.errors import BadInput


def aggregate_channels(features: torch.Tensor, groups: int) -> torch.Tensor:
    """Average (B,C,H,W) maps (or (B,C) vectors) over ``groups`` contiguous channel groups: (B,G,...).

    Adaptive pooling over the channel axis: with ``C % groups == 0`` each output channel is the mean
    of ``C // groups`` consecutive input channels.
    """
    spatial = features.shape[2:]
    flat = features.reshape(features.shape[0], features.shape[1], -1).transpose(1, 2)  # (B, HW, C)
    pooled = F.adaptive_avg_pool1d(flat, groups).transpose(1, 2)  # (B, G, HW)
    return pooled.reshape(features.shape[0], groups, *spatial)


def representation_mismatch(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Per sample ``‖n(s) − n(t)‖²`` with n the L2 normalisation of the flattened maps: (B,), in [0, 4].

    ``student``, ``teacher``: (B,...) of equal shape; the teacher side is detached.
    """
    if student.shape != teacher.shape:
        raise BadInput(
            f"KR: student maps {tuple(student.shape)} do not match teacher maps {tuple(teacher.shape)}"
        )
    s = F.normalize(student.flatten(1), dim=1)
    t = F.normalize(teacher.detach().flatten(1), dim=1)
    return (s - t).pow(2).sum(dim=1)


def sparse_recoding_penalty(mismatch: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
    """``(1/B)·‖∂(Σ_b mismatch_b)/∂activations‖₁``, differentiable (built with ``create_graph=True``).

    ``mismatch``: (B,) per-sample values computed from ``activations`` (B,...), which must be part of
    an autograd graph (the student's stage features during training).
    """
    if not activations.requires_grad:
        raise BadInput("KR sparse recoding penalty: the student's stage features carry no gradient")
    (grad,) = torch.autograd.grad(mismatch.sum(), activations, create_graph=True)
    return grad.abs().sum() / activations.shape[0]


class KnowledgeRepresenting(nn.Module):
    """Both KR terms over several stages; owns one learned adapter per stage (optimise with the student).

    ``student_channels``: stage name -> the student's channel count; ``stages``: the stages read;
    ``groups``: channel groups of the teacher's aggregated maps (at most each stage's teacher channels).
    """

    def __init__(self, student_channels: Mapping[str, int], stages: Sequence[str], groups: int) -> None:
        super().__init__()
        self.groups = groups
        self.adapters = nn.ModuleDict({s: HintAdapter(student_channels[s], groups) for s in stages})

    def forward(
        self,
        student_feats: Mapping[str, torch.Tensor],
        teacher_feats: Mapping[str, torch.Tensor],
        sparse: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(aggregation term, sparse penalty or None)``, each summed over the stages.

        ``*_feats``: stage name -> (B,C,H,W) maps (student and teacher sizes may differ).
        """
        aggregation, penalty = [], []
        for stage, adapter in self.adapters.items():
            target = aggregate_channels(teacher_feats[stage].detach(), self.groups)
            student = student_feats[stage]
            mismatch = representation_mismatch(adapter(student, target.shape[2:]), target)
            aggregation.append(mismatch.mean())
            if sparse:
                penalty.append(sparse_recoding_penalty(mismatch, student))
        return torch.stack(aggregation).sum(), torch.stack(penalty).sum() if sparse else None

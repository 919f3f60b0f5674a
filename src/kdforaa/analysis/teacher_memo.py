"""A frozen teacher's probabilities remembered by image content: each distinct image is run once.

``kdforaa outliers`` shows the teacher one test set many times (every op at every level, the whole
policy per level), and many of those images are ones it has already seen: an op at level 0 is the
identity, a grey image is unchanged by ``color``, ``posterize`` keeps 0 bits at both level 20 and 30,
``translate`` at level 30 moves every image out of the frame. Keyed by a digest of the uint8 bytes, such
an image costs a dictionary look-up instead of a forward pass.

The answers are the bits a pass over the same images would give: per-image outputs of a CPU forward do
not depend on the other images of the batch, except for a batch of one (a different matrix-vector
kernel), so a lone image is run padded to two.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import torch

from kdforaa.data.loader import normalize

DIGEST_BYTES = 16  # 128-bit BLAKE2b: collisions are out of reach for any test set


def image_digests(images: torch.Tensor) -> list[bytes]:
    """One digest per image of a ``(B,C,H,W)`` uint8 batch (any device), of its shape and bytes."""
    array = images.detach().cpu().contiguous().numpy()
    shape = repr(tuple(array.shape[1:])).encode()
    return [hashlib.blake2b(shape + row.tobytes(), digest_size=DIGEST_BYTES).digest() for row in array]


class TeacherMemo:
    """Softmax probabilities ``(B, classes)`` float32 (CPU) of ``teacher`` on uint8 batches, each distinct
    image computed once.

    ``teacher`` takes ``(B,C,H,W)`` normalised float images on ``device`` and returns logits; ``mean``
    and ``std`` are the data set's per-channel normalisation. ``requested`` and ``computed`` count
    images asked for and images actually run.
    """

    def __init__(
        self,
        teacher: Callable[[torch.Tensor], torch.Tensor],
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device | str,
        batch_size: int = 500,
    ) -> None:
        self.teacher, self.mean, self.std, self.device = teacher, mean, std, device
        self.batch_size = batch_size  # new images run in batches of this size (the last may be smaller)
        self._probs: dict[bytes, torch.Tensor] = {}
        self.requested = self.computed = 0

    @torch.inference_mode()
    def _run(self, images: torch.Tensor) -> torch.Tensor:
        lone = images.shape[0] == 1
        if lone:  # a batch of one takes another kernel: pad it to keep the bits of a larger batch
            images = images.expand(2, *images.shape[1:])
        logits = self.teacher(normalize(images.to(self.device), self.mean, self.std))
        probs = logits.float().softmax(1).cpu()
        return probs[:1] if lone else probs

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """``(B,C,H,W)`` uint8 -> ``(B, classes)`` probabilities, running only images not seen before."""
        digests = image_digests(images)
        new: dict[bytes, int] = {}
        for row, digest in enumerate(digests):
            if digest not in self._probs and digest not in new:
                new[digest] = row
        rows, digests_new = list(new.values()), list(new)
        for start in range(0, len(rows), self.batch_size):  # full batches: one kernel set-up per size
            chunk = torch.tensor(rows[start : start + self.batch_size], device=images.device)
            for digest, probs in zip(
                digests_new[start : start + self.batch_size], self._run(images[chunk]), strict=True
            ):
                self._probs[digest] = probs
        self.requested += len(digests)
        self.computed += len(new)
        return torch.stack([self._probs[digest] for digest in digests])

"""A many-class data set from a few-class one: two items side by side, the class the ordered pair.

From a split with ``C`` classes (Fashion-MNIST: 10) it builds images of two items next to each other,
``(N,1,H,W)`` -> ``(P,1,H,2W)``, whose class is ``C * left + right`` (``C**2`` classes: 100). Composite
sets of this kind (double-digit MNIST and its variants) are a common many-class stand-in when a real
one cannot be had.

How pairs are drawn (deterministic, independent of any run's seed, stable across numpy versions:
numpy's legacy ``RandomState`` stream is frozen):

- the pairs come in blocks of ``C**2``, one pair of every class per block in a shuffled order, so the
  first ``100 m`` pairs hold exactly ``m`` pairs of each class and any other prefix is balanced to
  within one pair per class: ``data.limit`` keeps the first pairs, so a limited set is balanced too;
- every item of the split is used at most once (each class's items in a shuffled order, left and right
  uses drawing from the same queue), so no two pairs share an item and pairs built from the test split
  never contain a training item;
- a block uses ``2 C`` items of each class, so a split whose smallest class has ``n`` items gives
  ``n // (2 C)`` blocks: Fashion-MNIST's 6 000 training items per class give 30 000 training pairs, its
  1 000 test items per class 5 000 test pairs.
"""

from __future__ import annotations

import numpy as np

from kdforaa.errors import BadInput


def pair_indices(labels: np.ndarray, num_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Item indices ``(left, right)``, each ``(P,) int64``, of the pairs of a split with ``labels (N,)``.

    Pair ``p`` has class ``num_classes * labels[left[p]] + labels[right[p]]`` (see the module docstring
    for the balance and no-reuse guarantees); ``seed`` fixes the draw.
    """
    rng = np.random.RandomState(seed)
    queues = [rng.permutation(np.flatnonzero(labels == c)) for c in range(num_classes)]
    uses_per_block = 2 * num_classes
    blocks = min(len(queue) for queue in queues) // uses_per_block
    if blocks == 0:
        smallest = min(range(num_classes), key=lambda c: len(queues[c]))
        raise BadInput(
            f"cannot build pairs: class {smallest} has {len(queues[smallest])} items, and a balanced "
            f"set of {num_classes**2} pair classes needs at least {uses_per_block} of every class"
        )
    order = np.concatenate([rng.permutation(num_classes**2) for _ in range(blocks)])
    # the classes of the items in the order they are taken: left, right, left, right, ...
    taken = np.stack([order // num_classes, order % num_classes], axis=1).ravel()
    by_class = np.argsort(taken, kind="stable")
    first_of_class = np.searchsorted(taken[by_class], np.arange(num_classes))
    occurrence = np.empty_like(taken)
    occurrence[by_class] = np.arange(len(taken)) - first_of_class[taken[by_class]]
    queue_table = np.stack([queue[: blocks * uses_per_block] for queue in queues])
    items = queue_table[taken, occurrence].reshape(-1, 2).astype(np.int64)
    return items[:, 0], items[:, 1]


def side_by_side(images: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``images (N,C,H,W)`` -> ``(P,C,H,2W)``: item ``left[p]`` on the left, ``right[p]`` on the right."""
    return np.concatenate([images[left], images[right]], axis=3)


def pair_labels(labels: np.ndarray, left: np.ndarray, right: np.ndarray, num_classes: int) -> np.ndarray:
    """``(P,) int64`` pair classes ``num_classes * labels[left] + labels[right]``."""
    return (num_classes * labels[left].astype(np.int64) + labels[right]).astype(np.int64)


def pair_class_names(classes: tuple[str, ...]) -> tuple[str, ...]:
    """The ``C**2`` pair class names: name ``C * a + b`` is ``"<a> + <b>"`` (``"Trouser + Bag"``)."""
    return tuple(f"{left} + {right}" for left in classes for right in classes)

"""What command-line tests share: the arguments of a tiny real training run, and the one-line error check."""

from __future__ import annotations

TINY_TRAIN_ARGS = [
    "data.limit=128",
    "data.test_limit=100",
    "model.name=resnet8",
    "train.epochs=1",
    "train.batch_size=64",
]


def one_line_error(err: str) -> str:
    """The single line a refused command printed (fails when it printed a traceback or several lines)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]

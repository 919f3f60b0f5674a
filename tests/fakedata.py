"""Writers of tiny fake data sets in the official on-disk formats (fixtures around them: tests/conftest.py).

Each writer returns a :class:`FakeData` with the root to point ``data.root`` at and the arrays it
wrote, so tests can compare what a reader returns with what was written.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class FakeData:
    """``root`` to load from; ``train``/``test``: ``(images (N,C,H,W) uint8, labels (N,) int64)``."""

    root: Path
    train: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]


def fake_split(
    n: int, channels: int, size: int, num_classes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Random images and labels (labels cycle through every class first, then are random)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, channels, size, size), dtype=np.uint8)
    labels = np.concatenate(
        [np.arange(min(n, num_classes)), rng.integers(0, num_classes, max(0, n - num_classes))]
    )
    return images, labels.astype(np.int64)


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array: magic ``0 0 8 ndim``, big-endian dims, payload."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file, gzipped when ``path`` ends in ``.gz``."""
    raw = idx_bytes(array)
    path.write_bytes(gzip.compress(raw, compresslevel=1) if path.suffix == ".gz" else raw)
    return path


def write_mnist_like(
    root: Path, n_train: int = 64, n_test: int = 16, gz: bool = True, seed: int = 0
) -> FakeData:
    """The four Fashion-MNIST/MNIST IDX files (28x28 grey, 10 classes) in ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    splits = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images, labels = fake_split(n, 1, 28, 10, seed + len(splits))
        write_idx(root / f"{prefix}-images-idx3-ubyte{suffix}", images[:, 0])
        write_idx(root / f"{prefix}-labels-idx1-ubyte{suffix}", labels.astype(np.uint8))
        splits[split] = (images, labels)
    return FakeData(root, splits["train"], splits["test"])


class _Python2StylePickler(pickle._Pickler):
    """Writes ``bytes`` as Python 2 wrote its ``str`` (BINSTRING), as in the official CIFAR files."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def cifar_pickle_bytes(obj: object, python2: bool = True) -> bytes:
    """Pickle like the official batches (protocol 2, Python 2 strings, ``numpy.core.multiarray``);
    ``python2=False`` gives a modern protocol-4 pickle as numpy 2 writes it."""
    if not python2:
        return pickle.dumps(obj, protocol=4)
    buffer = io.BytesIO()
    _Python2StylePickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


CIFAR_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


def write_cifar(
    root: Path,
    variant: str = "cifar10",
    n_train: int = 20,
    n_test: int = 10,
    seed: int = 0,
    python2: bool = True,
) -> FakeData:
    """An extracted CIFAR python-version folder ``root/<cifar-10-batches-py|cifar-100-python>``."""
    folder = root / CIFAR_FOLDERS[variant]
    folder.mkdir(parents=True, exist_ok=True)
    num_classes = 10 if variant == "cifar10" else 100
    train, test = (
        fake_split(n_train, 3, 32, num_classes, seed),
        fake_split(n_test, 3, 32, num_classes, seed + 1),
    )
    names = [f"class_{i}" for i in range(num_classes)]
    if variant == "cifar10":
        label_key, meta_file, test_file = "labels", "batches.meta", "test_batch"
        meta = {"label_names": names, "num_cases_per_batch": 10000, "num_vis": 3072}
        train_files = [f"data_batch_{i}" for i in range(1, 6)]
    else:
        label_key, meta_file, test_file = "fine_labels", "meta", "test"
        meta = {"fine_label_names": names, "coarse_label_names": [f"super_{i}" for i in range(20)]}
        train_files = ["train"]
    chunks = zip(train_files, np.array_split(np.arange(n_train), len(train_files)), strict=True)
    (folder / meta_file).write_bytes(cifar_pickle_bytes(meta, python2))
    for file, images, labels in [(f, train[0][i], train[1][i]) for f, i in chunks] + [(test_file, *test)]:
        batch = {"batch_label": file, label_key: labels.tolist(), "data": images.reshape(len(images), 3072)}
        (folder / file).write_bytes(cifar_pickle_bytes(batch, python2))
    return FakeData(root, train, test)


def write_image_folder(
    root: Path,
    classes: tuple[str, ...] = ("cat", "dog"),
    per_class: tuple[int, int] = (3, 2),
    size: tuple[int, int] = (20, 12),
    seed: int = 0,
) -> FakeData:
    """``root/{train,val}/<class>/NNN.{png,jpg}``: ``per_class`` = (train, val) images per class of
    ``size`` (W, H), each a uniform colour so that resized pixels are exactly predictable. The arrays
    in the result are ``(N,3,1,1)`` colours in folder order."""
    rng = np.random.default_rng(seed)
    splits = {}
    for split, folder, count in (("train", "train", per_class[0]), ("test", "val", per_class[1])):
        colours, labels = [], []
        for label, name in enumerate(classes):
            (root / folder / name).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                colour = tuple(int(v) for v in rng.integers(0, 256, 3))
                # PNG is lossless; the JPEG files are only for decoding, their colours are approximate
                suffix = "png" if i % 2 == 0 else "jpg"
                Image.new("RGB", size, colour).save(root / folder / name / f"{i:03d}.{suffix}")
                colours.append(colour)
                labels.append(label)
        splits[split] = (
            np.array(colours, dtype=np.uint8).reshape(-1, 3, 1, 1),
            np.array(labels, dtype=np.int64),
        )
    return FakeData(root, splits["train"], splits["test"])

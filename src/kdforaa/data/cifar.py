"""Reader for the CIFAR-10 / CIFAR-100 "python version" batches, through a restricted unpickler.

The official batches are Python 2 pickles of dicts holding a numpy array; unpickling them with the
standard ``pickle.load`` would run any global a tampered file names. :class:`ArrayUnpickler` admits
only the three globals that numpy array reconstruction needs and refuses everything else *before*
calling it.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from kdforaa.errors import BadInput

# numpy 1.x pickles name ``numpy.core.multiarray``, numpy 2.x ``numpy._core.multiarray``; asking an
# array how it reduces gives the function itself without importing a deprecated module.
_RECONSTRUCT = np.empty(0).__reduce__()[0]
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}

EXPECTED_LAYOUT = (
    "expected the extracted CIFAR python version: "
    "cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta} or cifar-100-python/{train,test,meta}"
)

# variant -> (extracted folder name, train files, test files, meta file, label key, class-names key)
_LAYOUTS = {
    "cifar10": (
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        "batches.meta",
        "labels",
        "label_names",
    ),
    "cifar100": ("cifar-100-python", ("train",), ("test",), "meta", "fine_labels", "fine_label_names"),
}


class ArrayUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy array reconstruction globals; anything else is refused."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed") from None


def load_pickle(path: Path) -> dict[str, Any]:
    """Read one CIFAR pickle (a dict; byte-string keys decoded) with :class:`ArrayUnpickler`."""
    try:
        with open(path, "rb") as handle:
            # latin1 maps Python 2 byte strings (the array payload) one to one onto str, as numpy expects
            obj = ArrayUnpickler(handle, encoding="latin1").load()
    except FileNotFoundError:
        raise BadInput(f"missing file {path}: {EXPECTED_LAYOUT}") from None
    except Exception as err:  # a corrupt pickle can fail with almost any error type; all mean "bad file"
        raise BadInput(f"cannot read {path} (truncated or not a CIFAR python batch): {err}") from None
    if not isinstance(obj, dict):
        raise BadInput(f"{path} is not a CIFAR python batch (expected a dict, got {type(obj).__name__})")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def extracted_folder(variant: str) -> str:
    """Name of the folder the official tarball unpacks to, e.g. ``cifar-10-batches-py``."""
    return _LAYOUTS[variant][0]


def layout_files(variant: str) -> tuple[str, ...]:
    """The files of an extracted folder: meta, then train batches, then test batches."""
    _, train_files, test_files, meta_file, _, _ = _LAYOUTS[variant]
    return (meta_file, *train_files, *test_files)


def _field(batch: dict[str, Any], key: str, path: Path) -> Any:
    if key not in batch:
        raise BadInput(f"{path} has no {key!r} entry: not a CIFAR python batch of this variant")
    return batch[key]


def _read_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    batch = load_pickle(path)
    data, labels = _field(batch, "data", path), _field(batch, label_key, path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise BadInput(f"{path}: 'data' must be a uint8 array of shape (N, 3072)")
    try:
        labels = np.asarray(labels)
    except ValueError:  # ragged nested lists
        labels = np.empty((), dtype=object)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise BadInput(f"{path}: {label_key!r} must be a list of integer labels, one per image")
    if len(labels) != len(data):
        raise BadInput(f"{path}: {len(labels)} labels for {len(data)} images")
    return data, labels.astype(np.int64)


def read_cifar(folder: Path, variant: str, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read one split from an extracted CIFAR folder.

    Returns ``(images (N,3,32,32) uint8, labels (N,) int64, class names)``.
    """
    _, train_files, test_files, meta_file, label_key, names_key = _LAYOUTS[variant]
    names = _field(load_pickle(folder / meta_file), names_key, folder / meta_file)
    if not isinstance(names, list | tuple):
        raise BadInput(f"{folder / meta_file}: {names_key!r} must be a list of class names")
    classes = [str(c) for c in names]
    parts = [_read_batch(folder / f, label_key) for f in (train_files if split == "train" else test_files)]
    images = np.concatenate([p[0] for p in parts]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([p[1] for p in parts])
    if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
        raise BadInput(f"{folder}: labels outside 0..{len(classes) - 1} for {variant}")
    return images, labels, classes

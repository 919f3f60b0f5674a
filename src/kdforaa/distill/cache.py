"""The replayable soft-label cache: a teacher's top-k logits per sample and epoch, computed once.

A training image is fixed by its key ``(seed, epoch, sample index)`` (docs/architecture.md), so the teacher's
outputs for every epoch can be computed ahead of training and looked up instead of running the teacher
at every step. FKD stores crop boxes with its soft labels; we replay the whole per-sample augmentation
from the keys, so only the logits need storing. A cache folder holds::

    header.json              format, version, k, num_classes, num_samples, epochs done, fingerprint
    epoch-0000.values.npy    (N, k) float16: each sample's k largest teacher logits, descending
    epoch-0000.classes.npy   (N, k) int16 (int32 above 32767 classes): their class indices
    ...

The images are those training shows the teacher, built by the same
:class:`~kdforaa.distill.views.TrainingViews`. The fingerprint is a sha256 over the config parts that
decide what the teacher sees (``seed``, ``data.name``, ``data.limit``, the whole ``augment`` section,
``teacher.input``), the sha256 of the teacher's weights file (``teacher.checkpoint``, or
``teacher.weights`` of a ``timm:`` teacher) and, where one is named, the teacher's architecture
(``teacher.model``, or the ``timm:<name>``); a cache is only ever replayed for the run it was made for.
``teacher.format`` is left out: it only says how to read the same bytes (a wrong one fails to load).
With
``teacher.input=clean`` the logits do not depend on the epoch, so one epoch file serves them all.
The teacher runs in float32 (no autocast) whatever ``train.amp`` says.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.lib.format import open_memmap
from tqdm import tqdm

from kdforaa import __version__
from kdforaa.atomic import replacing, write_with
from kdforaa.config import RunConfig, TeacherConfig, teacher_config
from kdforaa.data.datasets import Dataset, load_dataset
from kdforaa.data.loader import batches
from kdforaa.distill.teacher import Teacher, load_teacher
from kdforaa.distill.views import TrainingViews
from kdforaa.errors import BadInput
from kdforaa.progress import bar as progress_bar
from kdforaa.progress import note
from kdforaa.text import count

FORMAT = "kdforaa-soft-label-cache"
VERSION = 1
HEADER = "header.json"
#: logits of the classes outside a sample's cached top-k sit this far below its smallest cached logit
FILL_MARGIN = 20.0
_INT16_MAX_CLASSES = 32767


def teacher_inputs(cfg: RunConfig) -> dict[str, Any]:
    """The config parts that decide which image the teacher sees for ``(epoch, index)``."""
    return {
        "seed": cfg.seed,
        "data.name": cfg.data.name,
        "data.limit": cfg.data.limit,
        "augment": cfg.augment.model_dump(mode="json", exclude={"backend"}),  # same images on every backend
        "teacher.input": cfg.teacher.input,
    }


def _canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cached_teacher(cfg: RunConfig, teacher_checkpoint: str) -> TeacherConfig:
    """The teacher a cache for ``cfg`` holds: its ``teacher:`` section with that checkpoint."""
    return teacher_config(cfg.teacher, checkpoint=teacher_checkpoint)


def identify(cfg: RunConfig, teacher_checkpoint: str) -> dict[str, Any]:
    """``{"inputs", "teacher_sha256", ["teacher_model",] "fingerprint"}`` of the cache for ``cfg`` and
    that teacher (``teacher_model`` only where the architecture is named, so that the fingerprints of
    caches of kdforaa checkpoints stay what they were).

    Only a weights file can be fingerprinted: a ``timm:`` teacher needs ``teacher.weights``, since
    timm's own download is not pinned to bytes a later run would see again.
    """
    teacher = cached_teacher(cfg, teacher_checkpoint)
    if teacher.is_timm and teacher.weights is None:
        raise BadInput(
            f"teacher {teacher_checkpoint} takes timm's pretrained weights from timm's cache, which a "
            "soft-label cache cannot pin: set teacher.weights=FILE (a local file of those weights)"
        )
    path = Path(teacher_checkpoint if teacher.weights is None else teacher.weights)  # only timm sets weights
    if not path.is_file():
        raise BadInput(f"teacher checkpoint {path} does not exist: pass a run folder's best.pt or last.pt")
    identity: dict[str, Any] = {"inputs": teacher_inputs(cfg), "teacher_sha256": file_sha256(path)}
    architecture = teacher_checkpoint if teacher.is_timm else teacher.model
    if architecture is not None:
        identity["teacher_model"] = architecture
    return {**identity, "fingerprint": hashlib.sha256(_canonical_json(identity)).hexdigest()}


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _difference(recorded: dict[str, Any], wanted: dict[str, Any]) -> str:
    """What differs between a header's identity and the wanted one, e.g. ``augment.magnitude 9.0 != 15.0``."""
    old, new = _flatten(recorded.get("inputs", {})), _flatten(wanted["inputs"])
    changed = [f"{key} {old.get(key)!r} != {new.get(key)!r}" for key in new if old.get(key) != new.get(key)]
    if recorded.get("teacher_sha256") != wanted["teacher_sha256"]:
        changed.append("teacher checkpoint bytes differ")
    if recorded.get("teacher_model") != wanted.get("teacher_model"):
        changed.append(f"teacher model {recorded.get('teacher_model')!r} != {wanted.get('teacher_model')!r}")
    return "; ".join(changed) or "fingerprint differs"


def _epoch_files(folder: Path, epoch: int) -> tuple[Path, Path]:
    """The values and classes files of one epoch."""
    return folder / f"epoch-{epoch:04d}.values.npy", folder / f"epoch-{epoch:04d}.classes.npy"


def _write_json_atomic(path: Path, value: dict[str, Any]) -> None:
    write_with(path, lambda fh: fh.write((json.dumps(value, indent=2) + "\n").encode()), private=False)


def _read_header(folder: Path) -> dict[str, Any]:
    path = folder / HEADER
    if not path.is_file():
        raise BadInput(
            f"{path} does not exist: {folder} is not a soft-label cache (make one with kdforaa cache-teacher)"
        )
    try:
        header = json.loads(path.read_text())
    except (OSError, ValueError):
        raise BadInput(
            f"{path} is unreadable or not JSON: rebuild the cache with kdforaa cache-teacher"
        ) from None
    if not isinstance(header, dict) or header.get("format") != FORMAT or header.get("version") != VERSION:
        raise BadInput(
            f"{path} is not a version-{VERSION} kdforaa soft-label cache header: rebuild the cache with "
            "kdforaa cache-teacher"
        )
    return header


def expand_top_k(values: torch.Tensor, classes: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Full logits from a top-k: ``values (B,k)`` float at ``classes (B,k)`` int64 -> ``(B, num_classes)``.

    Every other class gets (the sample's smallest cached value − :data:`FILL_MARGIN`), so at
    temperature T its softmax weight is at most ``e^(−20/T)`` times the smallest cached class's.
    This is exact for ``topk_kd`` with k <= the cached k (only the teacher's top-k enter, after
    renormalisation); for ``kd`` (and for dynamic temperature / knowledge adjustment, which read the
    whole distribution) it is an approximation, close to ``topk_kd`` over the cached k, unless
    k >= num_classes, where it is exact up to fp16.
    """
    values = values.float()
    fill = values.min(dim=1, keepdim=True).values - FILL_MARGIN
    full = fill.expand(-1, num_classes).clone()
    return full.scatter_(1, classes.long(), values)


class SoftLabelCache:
    """Teacher logits replayed from a cache folder by ``(epoch, sample index)``; open with :meth:`open`."""

    def __init__(self, folder: Path, header: dict[str, Any]) -> None:
        self.folder = folder
        self.k: int = header["k"]
        self.num_classes: int = header["num_classes"]
        self.num_samples: int = header["num_samples"]
        #: epochs cached; with ``per_epoch`` False (clean teacher input) one file serves every epoch
        self.epochs: int = header["epochs"]
        self.per_epoch: bool = header["per_epoch"]
        self._loaded: tuple[int, np.ndarray, np.ndarray] | None = None

    @classmethod
    def open(cls, folder: str | Path, cfg: RunConfig, teacher_checkpoint: str) -> SoftLabelCache:
        """Open the cache in ``folder`` for a run of ``cfg`` distilling from ``teacher_checkpoint``.

        BadInput when the header or an epoch file is missing, when the cache was made for another
        config or teacher, or when it holds fewer epochs than ``cfg.train.epochs``.
        """
        folder = Path(folder)
        header = _read_header(folder)
        wanted = identify(cfg, teacher_checkpoint)
        if header.get("fingerprint") != wanted["fingerprint"]:
            raise BadInput(
                f"cache {folder} was made for another config or teacher ({_difference(header, wanted)}); "
                f"rebuild it with 'kdforaa cache-teacher --teacher {teacher_checkpoint} --config CONFIG "
                "--epochs E --out NEW_DIR'"
            )
        cache = cls(folder, header)
        if cache.per_epoch and cache.epochs < cfg.train.epochs:
            raise BadInput(
                f"cache {folder} holds {count(cache.epochs, 'epoch')} but train.epochs={cfg.train.epochs}: "
                "extend it "
                f"with 'kdforaa cache-teacher ... --epochs {cfg.train.epochs} --out {folder}'"
            )
        for epoch in range(cache.epochs if cache.per_epoch else 1):
            for path in _epoch_files(folder, epoch):
                if not path.is_file():
                    raise BadInput(
                        f"{path} is missing from cache {folder}: rebuild it with kdforaa cache-teacher"
                    )
        return cache

    def _arrays(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """The memory-mapped ``(N,k)`` values and classes of ``epoch`` (one epoch kept open at a time)."""
        if epoch < 0 or (self.per_epoch and epoch >= self.epochs):
            raise BadInput(
                f"epoch {epoch} is not in cache {self.folder}: it holds {count(self.epochs, 'epoch')} "
                f"(0..{self.epochs - 1}); extend it with kdforaa cache-teacher --epochs"
            )
        stored = epoch if self.per_epoch else 0
        if self._loaded is None or self._loaded[0] != stored:
            arrays = []
            for path in _epoch_files(self.folder, stored):
                try:
                    array = np.load(path, mmap_mode="r")
                except (OSError, ValueError):
                    raise BadInput(
                        f"{path} is missing or damaged: rebuild the cache with kdforaa cache-teacher"
                    ) from None
                if array.shape != (self.num_samples, self.k):
                    raise BadInput(
                        f"{path} has shape {array.shape}, the header says {(self.num_samples, self.k)}: "
                        "rebuild the cache with kdforaa cache-teacher"
                    )
                arrays.append(array)
            self._loaded = (stored, arrays[0], arrays[1])
        return self._loaded[1], self._loaded[2]

    def logits(
        self, x: torch.Tensor, *, epoch: int, indices: torch.Tensor | None, features: bool = False
    ) -> tuple[torch.Tensor, None]:
        """Teacher logits ``(B, num_classes)`` float32 for the ``(B,)`` sample ``indices`` of ``epoch``,
        on the device of ``x`` (the teacher's view, which a cache does not need to look at).

        The k cached values sit at their classes; the other classes are filled as
        :func:`expand_top_k` explains (exact for ``topk_kd`` with k <= the cached k). The same call as
        :meth:`Teacher.logits <kdforaa.distill.teacher.Teacher.logits>`; a cache holds no features.
        """
        if features:
            raise ValueError("a soft-label cache holds logits only: feature terms need a live teacher")
        if indices is None:
            raise BadInput("a soft-label cache is read by sample index: pass the samples' indices")
        device = x.device
        values, classes = self._arrays(epoch)
        idx = torch.as_tensor(indices).cpu().numpy().astype(np.int64, copy=False)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_samples):
            raise IndexError(f"sample indices outside 0..{self.num_samples - 1} of cache {self.folder}")
        top_values = torch.from_numpy(values[idx].astype(np.float32)).to(device)
        top_classes = torch.from_numpy(classes[idx].astype(np.int64)).to(device)
        return expand_top_k(top_values, top_classes, self.num_classes), None


def _cache_epoch(
    teacher: Teacher,
    views: TrainingViews,
    dataset: Dataset,
    cfg: RunConfig,
    epoch: int,
    folder: Path,
    k: int,
    batch_size: int,
    device: torch.device,
    bar: tqdm,
) -> None:
    """Write one epoch's values and classes files: to temporary files first, renamed when complete."""
    n = len(dataset)
    index_dtype = np.int16 if dataset.num_classes <= _INT16_MAX_CLASSES else np.int32
    values_file, classes_file = _epoch_files(folder, epoch)
    with (
        replacing(values_file, private=False) as values_tmp,
        replacing(classes_file, private=False) as classes_tmp,
    ):
        values = open_memmap(values_tmp, mode="w+", dtype=np.float16, shape=(n, k))
        classes = open_memmap(classes_tmp, mode="w+", dtype=index_dtype, shape=(n, k))
        for images, _, indices in batches(dataset, torch.arange(n), batch_size, cfg.data.num_workers):
            x = views(images.to(device), indices, epoch).teacher
            logits, _ = teacher.logits(x, epoch=epoch, indices=indices)
            top = logits.topk(k, dim=1)
            rows = indices.numpy()
            values[rows] = top.values.cpu().numpy().astype(np.float16)
            classes[rows] = top.indices.cpu().numpy().astype(index_dtype)
            bar.update(1)
        for array in (values, classes):
            array.flush()
        del values, classes


def _start_header(
    folder: Path, wanted: dict[str, Any], k: int, dataset: Dataset, cfg: RunConfig
) -> dict[str, Any]:
    """The folder's header when it matches (resume), else a fresh one; a foreign cache is BadInput."""
    if not (folder / HEADER).exists():
        return {
            "format": FORMAT,
            "version": VERSION,
            "kdforaa_version": __version__,
            **wanted,
            "k": k,
            "num_classes": dataset.num_classes,
            "num_samples": len(dataset),
            "per_epoch": cfg.teacher.input == "augmented",
            "epochs": 0,
        }
    header = _read_header(folder)
    if header.get("fingerprint") != wanted["fingerprint"]:
        raise BadInput(
            f"{folder} holds a cache made for another config or teacher ({_difference(header, wanted)}): "
            "write the cache to another folder or delete it"
        )
    if header["k"] != k:
        raise BadInput(
            f"{folder} holds a top-{header['k']} cache: extend it with k={header['k']} or write the cache to "
            "another folder"
        )
    return header


def _cache_teacher(cfg: RunConfig, checkpoint: str, dataset: Dataset, device: torch.device) -> Teacher:
    """The teacher whose logits the cache holds, on ``device``, laid out as training would run it."""
    return load_teacher(
        cached_teacher(cfg, checkpoint),
        dataset.num_classes,
        dataset.in_channels,
        device,
        dataset.image_size,
        channels_last=cfg.train.channels_last,
    )


def build_cache(
    cfg: RunConfig,
    teacher_checkpoint: str,
    out: str | Path,
    epochs: int,
    k: int = 10,
    batch_size: int | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> SoftLabelCache:
    """Run the teacher over the training images of epochs ``0..epochs-1`` of ``cfg``; cache them in ``out``.

    Samples go in index order; their keys make each image the one training sees. ``k`` is capped at
    the class count; ``batch_size`` defaults to ``cfg.train.eval_batch_size``. Epochs already complete
    in ``out`` are skipped; each new one is written atomically, then the header. Returns the cache.
    """
    batch_size = cfg.train.eval_batch_size if batch_size is None else batch_size
    for name, value in (("epochs", epochs), ("k", k), ("batch_size", batch_size)):
        if value < 1:
            raise BadInput(f"{name} must be at least 1, got {value}")
    wanted = identify(cfg, teacher_checkpoint)
    dataset = load_dataset(cfg.data, "train")
    k = min(k, dataset.num_classes)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    header = _start_header(folder, wanted, k, dataset, cfg)
    needed = epochs if header["per_epoch"] else 1
    if header["epochs"] >= needed:
        return SoftLabelCache(folder, header)
    _write_json_atomic(folder / HEADER, header)
    device = torch.device(device)
    teacher = _cache_teacher(cfg, teacher_checkpoint, dataset, device)
    views = TrainingViews(cfg, dataset.image_size, dataset.mean, dataset.std, device=device)
    steps = math.ceil(len(dataset) / batch_size) * (needed - header["epochs"])
    with progress_bar(steps, "caching teacher logits", enabled=progress) as bar:
        for epoch in range(header["epochs"], needed):
            started = time.perf_counter()
            bar.set_postfix_str(f"epoch {epoch + 1}/{needed}")
            _cache_epoch(teacher, views, dataset, cfg, epoch, folder, k, batch_size, device, bar)
            header["epochs"] = epoch + 1
            _write_json_atomic(folder / HEADER, header)
            seconds = time.perf_counter() - started
            note(f"caching teacher logits: epoch {epoch + 1}/{needed} done in {seconds:.1f} s", progress)
    return SoftLabelCache(folder, header)

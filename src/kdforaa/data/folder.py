"""ImageNet-style image folders: ``root/train/<class>/*.jpg`` and ``root/val/<class>/*.jpg``.

Images stay on disk and are decoded one by one (in DataLoader workers) to a fixed square size, so
folders of any size stream through the same ``(B,C,H,W) uint8`` batches as in-memory data sets.
"""

from __future__ import annotations

import copy
import stat
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from kdforaa.errors import BadInput

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"})
SPLIT_FOLDERS = {"train": "train", "test": "val"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def decode_image(path: Path, size: int) -> torch.Tensor:
    """Decode an image file to ``(3,size,size) uint8`` RGB.

    The shorter side is resized to ``size`` (bilinear, antialiased by Pillow), then the centre square
    is cropped. JPEGs are decoded at a reduced DCT scale first when that still leaves both sides
    >= ``size``, which makes large photos much cheaper to read.
    """
    try:
        with Image.open(path) as img:
            img.draft("RGB", (size, size))
            img = img.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as err:
        # Pillow refuses images of over twice Image.MAX_IMAGE_PIXELS when it opens them (a PNG bomb)
        raise BadInput(f"cannot decode image {path}: {err}") from None
    w, h = img.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.resize((new_w, new_h), Image.Resampling.BILINEAR)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    img = img.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).contiguous()


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(folder: Path) -> list[Path]:
    """The image files of a class folder, each checked to be a regular file before anything reads it:
    reading a FIFO named ``x.png`` would wait forever, and a device never ends."""
    files = sorted(
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )
    for path in files:
        try:
            regular = stat.S_ISREG(path.stat().st_mode)
        except OSError as err:
            raise BadInput(f"cannot read image {path}: {err.strerror}: fix or remove it") from None
        if not regular:
            raise BadInput(f"image {path} is not a regular file (a FIFO, device or socket): remove it")
    return files


class ImageFolder:
    """One split of an image folder, ordered class by class, files sorted by name within a class.

    Class names (and their indices) come from the sub-folders of ``root/train`` for both splits, so
    train and val labels always agree. ``labels`` is ``(N,) int64``; ``load(i)`` decodes one image.
    """

    in_memory = False
    in_channels = 3

    def __init__(self, root: str | Path, split: str, image_size: int) -> None:
        root = Path(root)
        train_dir, split_dir = root / "train", root / SPLIT_FOLDERS[split]
        for needed in (train_dir, split_dir):
            if not needed.is_dir():
                raise BadInput(
                    f"missing folder {needed}: expected {root}/train/<class>/*.jpg and val/<class>/"
                )
        self.classes = tuple(p.name for p in _visible_dirs(train_dir))
        if not self.classes:
            raise BadInput(f"{train_dir} has no class sub-folders: expected {train_dir}/<class>/*.jpg")
        index = {name: i for i, name in enumerate(self.classes)}
        self.paths: list[Path] = []
        labels: list[int] = []
        for class_dir in _visible_dirs(split_dir):
            if class_dir.name not in index:
                raise BadInput(f"{class_dir} is a class that {train_dir} does not have")
            files = _image_files(class_dir)
            self.paths += files
            labels += [index[class_dir.name]] * len(files)
        if not self.paths:
            raise BadInput(f"{split_dir} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in <class>/")
        self.labels = torch.tensor(labels, dtype=torch.int64)
        self.image_size = (image_size, image_size)
        self.mean, self.std = IMAGENET_MEAN, IMAGENET_STD

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.paths)

    def first(self, n: int) -> ImageFolder:
        """The first ``n`` samples as a new data set (``data.limit``)."""
        head = copy.copy(self)
        head.paths, head.labels = self.paths[:n], self.labels[:n]
        return head

    def load(self, index: int) -> torch.Tensor:
        """Sample ``index`` decoded to ``(3,S,S) uint8``."""
        return decode_image(self.paths[index], self.image_size[0])

    def images(self, indices: torch.Tensor) -> torch.Tensor:
        """Decode the given samples in this process: ``(B,3,S,S) uint8`` (batches use workers)."""
        return torch.stack([self.load(int(i)) for i in indices])

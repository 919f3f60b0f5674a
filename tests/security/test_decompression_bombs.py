"""Compressed inputs are inflated within bounds: a gzip bomb in an IDX file, a tar bomb in a data set
archive and a PNG bomb in an image folder are each one clear BadInput line, never a memory or disk
filling. The bombs are real and made here, small on disk."""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import one_line_error
from kdforaa.cli import main
from kdforaa.data.fetch import unpack_tarball
from kdforaa.data.folder import decode_image
from kdforaa.data.idx import gunzip_idx, read_idx
from kdforaa.errors import BadInput

BOMB_BYTES = 256 << 20  # what the bombs inflate to


def gzip_bomb(header: bytes, inflated: int = BOMB_BYTES) -> bytes:
    """gzip data of ``header`` followed by zeros up to ``inflated`` bytes (about 1000:1)."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts, zeros = [deflater.compress(header)], bytes(1 << 20)
    for _ in range((inflated - len(header)) // len(zeros)):
        parts.append(deflater.compress(zeros))
    return b"".join([*parts, deflater.flush()])


def idx_header(*dims: int) -> bytes:
    return bytes([0, 0, 0x08, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


@pytest.fixture(scope="module")
def idx_bomb() -> bytes:
    """A valid header for 100 28x28 images (78 416 bytes), then 256 MB of zeros."""
    return gzip_bomb(idx_header(100, 28, 28))


def test_an_idx_gzip_bomb_stops_at_the_declared_size(idx_bomb, tmp_path):
    assert len(idx_bomb) < BOMB_BYTES // 500
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(idx_bomb)
    tracemalloc.start()
    try:
        with pytest.raises(BadInput, match="more than the 78,416 bytes its IDX header declares: .*gzip bomb"):
            read_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"inflating the bomb took {peak:,} bytes"


def test_a_header_declaring_a_huge_size_is_refused_before_inflating():
    huge = gzip_bomb(idx_header(1 << 20, 1 << 20, 1 << 10), inflated=1 << 20)
    with pytest.raises(BadInput, match="declares 1,125,899,906,842,640 bytes, more than"):
        gunzip_idx(huge, "huge.gz")


def test_valid_and_multi_member_gzip_still_read(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = idx_header(2, 3, 4) + array.tobytes()
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(raw[:10]) + gzip.compress(raw[10:]))  # two members
    assert (read_idx(path) == array).all()
    path.write_bytes(gzip.compress(raw)[:-12])  # cut short
    with pytest.raises(BadInput, match="truncated"):
        read_idx(path)


def test_training_on_an_idx_bomb_is_one_line(idx_bomb, tmp_path, capsys):
    """The same bomb where a data set's training images would be, through the command line."""
    root = tmp_path / "fashion-mnist"
    root.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):  # fmt: skip
        (root / f"{name}.gz").write_bytes(idx_bomb)
    code = main(["train", f"data.root={root}", "--out", str(tmp_path / "run"), "--quiet"])
    assert code == 2 and "gzip bomb" in one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "run").exists()


class Zeros(io.RawIOBase):
    """``size`` zero bytes, read in pieces (tarfile copies a member's data from it)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


def tar_bomb(path: Path, members: dict[str, int]) -> Path:
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, size in members.items():
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, Zeros(size))
    return path


def test_a_tar_bomb_is_refused_before_its_data_is_written(tmp_path):
    archive = tar_bomb(tmp_path / "cifar.tar.gz", {"data/small": 1000, "data/huge": BOMB_BYTES})
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(BadInput, match="more than 16,777,216 bytes .* tar bomb"):
        unpack_tarball(archive, dest, "data", max_bytes=16 << 20)
    assert list(dest.iterdir()) == []  # the partial output is gone


def test_a_tar_of_too_many_files_is_refused(tmp_path):
    archive = tar_bomb(tmp_path / "many.tar.gz", {f"data/{i}": 0 for i in range(50)})
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(BadInput, match="or 20 files"):
        unpack_tarball(archive, dest, "data", max_members=20)
    assert unpack_tarball(archive, dest, "data") == dest / "data"  # the default bounds let it through
    assert len(list((dest / "data").iterdir())) == 50


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_a_png_bomb_in_an_image_folder_is_one_line(tmp_path):
    """A 30 000 x 30 000 PNG of a few hundred bytes: Pillow refuses it when opening it."""
    header = struct.pack(">IIBBBBB", 30_000, 30_000, 8, 0, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
    path = tmp_path / "bomb.png"
    path.write_bytes(png + png_chunk(b"IEND", b""))
    with pytest.raises(BadInput, match="cannot decode image .*bomb.png.*decompression bomb"):
        decode_image(path, 32)

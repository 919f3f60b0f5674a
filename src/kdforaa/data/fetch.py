"""Download a data set's official files, verify their published MD5 checksums, unpack tarballs.

Downloads are resumable and atomic: bytes go to ``<file>.part`` (continued with an HTTP Range
request after an interruption) and the file takes its real name only once its checksum matches, so a
half or corrupt download is never read as data. Tarballs are unpacked member by member into a
scratch folder, refusing absolute paths, ``..``, links, and more data or files than a data set holds
(a tar bomb), then moved into place in one rename.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from dataclasses import dataclass
from http.client import HTTPResponse
from pathlib import Path, PurePosixPath
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from kdforaa.data.datasets import data_home
from kdforaa.errors import BadInput
from kdforaa.progress import bar as progress_bar
from kdforaa.progress import note

CHUNK = 1 << 20
# The official archives unpack to about 180 MB in a dozen files; far more means a damaged or hostile one.
MAX_UNPACKED_BYTES = 1 << 30
MAX_MEMBERS = 1000


@dataclass(frozen=True)
class Source:
    """Where a data set is published: a base URL, its files with their published MD5s, and for a
    tarball the folder it unpacks to."""

    base_url: str
    files: tuple[tuple[str, str], ...]
    unpacks_to: str | None = None


# MD5s as published by the data sets' authors (the same values torchvision verifies against).
SOURCES = {
    "fashion-mnist": Source(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",
        (
            ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
            ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
            ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
        ),
    ),
    "mnist": Source(
        "https://ossci-datasets.s3.amazonaws.com/mnist",
        (
            ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
            ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
            ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
        ),
    ),
    "cifar10": Source(
        "https://www.cs.toronto.edu/~kriz",
        (("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),),
        "cifar-10-batches-py",
    ),
    "cifar100": Source(
        "https://www.cs.toronto.edu/~kriz",
        (("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85"),),
        "cifar-100-python",
    ),
}
#: the data sets with published files to download (the others are made from them, or are folders)
FETCHABLE: tuple[str, ...] = tuple(SOURCES)


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _resumed_from(response: HTTPResponse, offset: int) -> int:
    """Byte offset the response body starts at: ``offset`` if the server honoured Range, else 0."""
    content_range = response.headers.get("Content-Range", "")
    return offset if response.status == 206 and content_range.startswith(f"bytes {offset}-") else 0


def _download_part(url: str, part: Path, progress: bool) -> None:
    """Append the rest of ``url`` to ``part`` (Range request from its current size)."""
    offset = part.stat().st_size if part.exists() else 0
    request = Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        with urlopen(request, timeout=60) as response:
            start = _resumed_from(response, offset)
            total = start + response.length if response.length is not None else None
            bar = progress_bar(total, part.stem, enabled=progress, initial=start, unit="B", unit_scale=True)
            with open(part, "ab" if start else "wb") as out, bar:
                while block := response.read(CHUNK):
                    out.write(block)
                    bar.update(len(block))
            note(f"downloaded {url} ({part.stat().st_size / 1e6:.1f} MB)", enabled=progress)
    except HTTPError as err:
        if not (err.code == 416 and offset):  # 416 with a .part: nothing left to fetch, verify it
            raise BadInput(f"cannot download {url}: HTTP {err.code} {err.reason}") from None
    except (URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise BadInput(f"cannot download {url}: {reason}; run the same command again to resume") from None


def download(url: str, target: Path, md5: str, progress: bool = True) -> None:
    """Fetch ``url`` to ``target`` through ``target.part``; rename only if its MD5 is ``md5``."""
    part = target.with_name(target.name + ".part")
    _download_part(url, part, progress)
    got = md5_of(part)
    if got != md5:
        part.unlink()
        raise BadInput(
            f"checksum mismatch for {url}: md5 {got}, expected {md5}; the download was deleted, try again"
        )
    os.replace(part, target)


def _member_target(base: Path, archive: Path, member: tarfile.TarInfo) -> Path:
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts or not (member.isfile() or member.isdir()):
        raise BadInput(
            f"{archive}: refusing to unpack {member.name!r} (absolute path, '..' or not a plain file)"
        )
    return base.joinpath(*name.parts)


def unpack_tarball(
    archive: Path,
    dest: Path,
    folder: str,
    max_bytes: int = MAX_UNPACKED_BYTES,
    max_members: int = MAX_MEMBERS,
) -> Path:
    """Unpack ``archive`` (.tar.gz) and move its top ``folder`` to ``dest/folder`` in one rename.

    At most ``max_members`` entries holding ``max_bytes`` in all are unpacked (counted from the
    members' headers before their data is written): a tar bomb stops there with one line, and its
    partial output is removed.
    """
    scratch = dest / f".{folder}.unpacking"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    unpacked = 0
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for count, member in enumerate(tar, 1):
                unpacked += member.size
                if unpacked > max_bytes or count > max_members:
                    raise BadInput(
                        f"{archive} unpacks to more than {max_bytes:,} bytes or {max_members:,} files, "
                        "far more than the data set holds: a damaged archive or a tar bomb; not unpacked"
                    )
                target = _member_target(scratch, archive, member)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None  # a plain file (_member_target refused anything else)
                with source as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
        if not (scratch / folder).is_dir():
            raise BadInput(f"{archive} does not contain the folder {folder}/")
        os.replace(scratch / folder, dest / folder)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise BadInput(f"cannot unpack {archive}: {err}") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return dest / folder


def fetch_dataset(
    name: str, root: str | Path | None = None, base_url: str | None = None, progress: bool = True
) -> Path:
    """Download data set ``name`` into ``<root>/<name>/`` and return that folder.

    ``root`` defaults to :func:`~kdforaa.data.datasets.data_home` (``$KDFORAA_DATA`` or
    ``~/.cache/kdforaa``), where :func:`~kdforaa.data.datasets.load_dataset` looks without a
    ``data.root``. ``base_url`` replaces the official host (mirrors, tests). Files already present
    with the right checksum (or an already unpacked tarball) are not fetched again.
    """
    if name not in SOURCES:
        raise BadInput(f"cannot fetch {name!r}: choose one of {', '.join(FETCHABLE)}")
    source = SOURCES[name]
    dest = (Path(root).expanduser() if root is not None else data_home()) / name
    dest.mkdir(parents=True, exist_ok=True)
    if source.unpacks_to and (dest / source.unpacks_to).is_dir():
        return dest
    base = (base_url or source.base_url).rstrip("/")
    for filename, md5 in source.files:
        target = dest / filename
        if not (target.is_file() and md5_of(target) == md5):
            download(f"{base}/{filename}", target, md5, progress)
        if source.unpacks_to:
            unpack_tarball(target, dest, source.unpacks_to)
            target.unlink()
    return dest

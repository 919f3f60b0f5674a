"""Reader for the IDX format of MNIST and Fashion-MNIST (gzipped or not).

A gzipped file is inflated no further than the size its own IDX header declares (at most
:data:`MAX_IDX_BYTES`): a gzip bomb, or a header that lies about its size, stops there with one line
instead of filling the memory.
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import numpy as np
import numpy.typing as npt

from kdforaa.errors import BadInput

_DTYPES: dict[int, npt.DTypeLike] = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}
MAX_IDX_BYTES = 1 << 32  # 4 GiB: the MNIST family's largest file (EMNIST's) is a fraction of that
_MAX_HEADER = 4 + 4 * 255  # magic and up to 255 dims
_GZIP = 16 + zlib.MAX_WBITS  # zlib's wbits for the gzip container (header, CRC and size checked)


def _header(raw: bytes, name: str) -> tuple[np.dtype, tuple[int, ...], int]:
    """``(dtype, dims, header length)`` from the first bytes of an IDX file (magic ``0 0 dtype ndim``,
    then big-endian dims); BadInput when they are not an IDX header."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise BadInput(f"{name} is not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise BadInput(f"{name} is truncated: its IDX header is incomplete")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    return np.dtype(_DTYPES[raw[2]]), dims, header


def _declared_size(raw: bytes, name: str) -> int:
    """The total size in bytes the IDX header at the start of ``raw`` declares (Python ints: no wrap)."""
    dtype, dims, header = _header(raw, name)
    return header + math.prod(dims) * dtype.itemsize


def parse_idx(raw: bytes, name: str = "IDX data") -> np.ndarray:
    """Decode IDX bytes (magic ``0 0 dtype ndim``, big-endian dims, payload) into an array."""
    dtype, dims, header = _header(raw, name)
    expected = _declared_size(raw, name)
    if len(raw) != expected:
        raise BadInput(
            f"{name} is truncated or padded: {len(raw)} bytes, expected {expected} for shape {dims}"
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(dims)


def gunzip_idx(compressed: bytes, name: str = "IDX data") -> bytes:
    """The IDX bytes of gzip data (one or more members), inflated no further than the size the IDX
    header declares (one byte more shows a lie), nor than :data:`MAX_IDX_BYTES`; BadInput otherwise."""
    out, limit = bytearray(), None
    pending = compressed
    while pending:
        inflater = zlib.decompressobj(_GZIP)
        while not inflater.eof:
            # first just the header (at most 4 + 4 * 255 bytes), then up to one byte past the declared size
            wanted = _MAX_HEADER if limit is None else limit + 1 - len(out)
            piece = inflater.decompress(pending, max(wanted, 1))
            pending = inflater.unconsumed_tail
            if not piece and not pending:
                raise BadInput(f"cannot read {name}: its gzip stream ends early (truncated; fetch it again)")
            out += piece
            if limit is None and len(out) >= 4 and len(out) >= 4 + 4 * out[3]:
                limit = _declared_size(bytes(out[: 4 + 4 * out[3]]), name)
                if limit > MAX_IDX_BYTES:
                    raise BadInput(
                        f"{name} declares {limit:,} bytes, more than the {MAX_IDX_BYTES:,} an IDX file "
                        "may hold here: not an MNIST-style file"
                    )
            if limit is not None and len(out) > limit:
                raise BadInput(
                    f"{name} inflates to more than the {limit:,} bytes its IDX header declares: "
                    "a damaged file or a gzip bomb; download it again"
                )
        pending = inflater.unused_data.lstrip(b"\0")  # a further gzip member, or zero padding
    return bytes(out)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file; a ``.gz`` suffix means gzip (inflated within the size its header declares)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gunzip_idx(raw, str(path))
    except (OSError, zlib.error) as err:
        raise BadInput(f"cannot read {path}: {err}") from None
    return parse_idx(raw, str(path))

"""Fuzzing the readers of untrusted files: IDX (kdforaa.data.idx), CIFAR batches (kdforaa.data.cifar)
and run configs (kdforaa.config), with random, truncated and mutated bytes and random YAML trees.

The only outcomes allowed: a correct result (an array of the declared shape and dtype; a CIFAR split
of uint8 ``(N,3,32,32)`` images with int64 labels inside the class range; a RunConfig that survives
its own YAML round trip) or a ValueError (BadInput) with a non-empty message. No other exception, no
hang, no crash.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from test_fuzz_ops import fuzz, result_or_refusal

from fakedata import cifar_pickle_bytes, write_cifar
from kdforaa.config import RunConfig, build_config, config_to_dict, load_config, parse_overrides
from kdforaa.data import cifar
from kdforaa.data.idx import parse_idx, read_idx

pytestmark = pytest.mark.timeout(60)

# --------------------------------------------------------------------------------------------- IDX
IDX_DTYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2")}
IDX_DTYPES |= {0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def idx_encode(array: np.ndarray, code: int) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(IDX_DTYPES[code]).tobytes()


@st.composite
def idx_files(draw: st.DrawFn) -> tuple[bytes, np.ndarray]:
    """A valid IDX encoding and the array it holds (any IDX dtype, 1..4 dims of 0..6)."""
    code = draw(st.sampled_from(sorted(IDX_DTYPES)))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=6))
    array = draw(hnp.arrays(IDX_DTYPES[code], shape))
    return idx_encode(array, code), array


def assert_idx_result(result: object) -> None:
    assert isinstance(result, np.ndarray) and result.dtype in IDX_DTYPES.values()


@fuzz(500)
@given(
    raw=st.one_of(
        st.binary(max_size=80),
        st.builds(
            lambda code, ndim, rest: bytes([0, 0, code, ndim]) + rest,
            st.integers(0, 255),
            st.integers(0, 255),
            st.binary(max_size=80),
        ),
        st.builds(  # well-formed header, any dims (products far beyond int64), short payload
            lambda code, dims, rest: (
                bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + rest
            ),
            st.sampled_from(sorted(IDX_DTYPES)),
            st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=6),
            st.binary(max_size=16),
        ),
    )
)
def test_random_bytes_parse_or_are_refused(raw):
    result = result_or_refusal(lambda: parse_idx(raw, "fuzz"))
    if result is not None:
        assert_idx_result(result)
        assert len(raw) == 4 + 4 * result.ndim + result.nbytes


@fuzz(150)
@given(case=idx_files(), cut=st.integers(0, 10**6), padding=st.binary(min_size=1, max_size=9))
def test_valid_files_round_trip_and_truncation_or_padding_is_refused(case, cut, padding):
    raw, array = case
    parsed = parse_idx(raw)
    assert parsed.shape == array.shape and parsed.dtype == IDX_DTYPES[raw[2]]
    np.testing.assert_array_equal(parsed, array)
    with pytest.raises(ValueError, match=r"\S"):
        parse_idx(raw[: cut % len(raw)])
    with pytest.raises(ValueError, match=r"\S"):
        parse_idx(raw + padding)


@fuzz(100)
@given(
    case=idx_files(),
    compressed_cut=st.one_of(st.none(), st.integers(0, 10**6)),
    flip=st.one_of(st.none(), st.tuples(st.integers(0, 10**6), st.integers(1, 255))),
    gz=st.booleans(),
)
def test_files_on_disk_read_or_are_refused(tmp_path_factory, case, compressed_cut, flip, gz):
    """Gzipped or raw IDX files, truncated and with a flipped byte: the array or a refusal."""
    raw = bytearray(gzip.compress(case[0], compresslevel=1) if gz else case[0])
    if compressed_cut is not None:
        raw = raw[: compressed_cut % len(raw)]
    if flip is not None and raw:
        raw[flip[0] % len(raw)] ^= flip[1]
    path = tmp_path_factory.mktemp("idx") / ("images.gz" if gz else "images")
    path.write_bytes(bytes(raw))
    result = result_or_refusal(lambda: read_idx(path))
    if result is not None:
        assert_idx_result(result)


# ------------------------------------------------------------------------------------------- CIFAR
@pytest.fixture(scope="module")
def cifar_folder(tmp_path_factory) -> Path:
    """An extracted CIFAR-10 folder whose test_batch the tests overwrite."""
    root = tmp_path_factory.mktemp("cifar")
    write_cifar(root, "cifar10", n_train=5, n_test=4)
    return root / "cifar-10-batches-py"


def valid_batch(python2: bool) -> bytes:
    images = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    return cifar_pickle_bytes({"batch_label": "test", "labels": [3, 7], "data": images}, python2)


def assert_cifar_split(result: object) -> None:
    images, labels, classes = result
    assert images.dtype == np.uint8 and images.shape[1:] == (3, 32, 32)
    assert labels.dtype == np.int64 and labels.shape == (len(images),)
    assert len(labels) == 0 or (labels.min() >= 0 and labels.max() < len(classes))


@fuzz(150)
@given(raw=st.one_of(st.binary(max_size=200), st.binary(max_size=60).map(lambda b: b"\x80\x02" + b)))
def test_random_bytes_as_a_batch_load_or_are_refused(cifar_folder, raw):
    path = cifar_folder / "test_batch"
    path.write_bytes(raw)
    result = result_or_refusal(lambda: cifar.load_pickle(path))
    assert result is None or isinstance(result, dict)
    split = result_or_refusal(lambda: cifar.read_cifar(cifar_folder, "cifar10", "test"))
    if split is not None:
        assert_cifar_split(split)


@fuzz(200)
@given(
    python2=st.booleans(),
    cut=st.one_of(st.none(), st.integers(0, 10**6)),
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=3),
)
def test_truncated_or_mutated_batches_read_or_are_refused(cifar_folder, python2, cut, flips):
    raw = bytearray(valid_batch(python2))
    if cut is not None:
        raw = raw[: cut % len(raw)]
    for where, mask in flips:
        if raw:
            raw[where % len(raw)] ^= mask
    (cifar_folder / "test_batch").write_bytes(bytes(raw))
    split = result_or_refusal(lambda: cifar.read_cifar(cifar_folder, "cifar10", "test"))
    if split is not None:
        assert_cifar_split(split)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.binary(max_size=5),
)
arrays = hnp.arrays(
    st.sampled_from([np.uint8, np.int8, np.int64, np.uint64, np.float32, np.float64, np.bool_, np.complex64]),
    hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
)
label_values = st.one_of(
    st.lists(st.integers(-3, 12), max_size=5),
    st.lists(scalars, max_size=5),
    st.lists(st.lists(st.integers(0, 9), max_size=3), max_size=4),
    arrays,
    scalars,
)
data_values = st.one_of(
    st.integers(0, 5).map(lambda n: np.zeros((n, 3072), np.uint8)),
    arrays,
    st.lists(st.integers(0, 255), max_size=4),
    scalars,
)


@fuzz(200)
@given(
    batch=st.one_of(
        st.fixed_dictionaries({"data": data_values, "labels": label_values}),
        st.dictionaries(st.one_of(st.text(max_size=6), st.binary(max_size=6)), scalars, max_size=3),
        st.lists(scalars, max_size=3),
        scalars,
    ),
    python2=st.booleans(),
)
def test_random_batch_contents_read_or_are_refused(cifar_folder, batch, python2):
    """Whatever a batch pickle holds (arrays of any dtype or shape, odd labels): a valid split or BadInput."""
    (cifar_folder / "test_batch").write_bytes(cifar_pickle_bytes(batch, python2))
    split = result_or_refusal(lambda: cifar.read_cifar(cifar_folder, "cifar10", "test"))
    if split is not None:
        assert_cifar_split(split)


@fuzz(100)
@given(
    names=st.one_of(
        st.lists(scalars, max_size=12), scalars, arrays, st.dictionaries(st.text(max_size=3), scalars)
    )
)
def test_random_class_name_lists_read_or_are_refused(tmp_path_factory, names):
    root = tmp_path_factory.mktemp("meta")
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "batches.meta").write_bytes(cifar_pickle_bytes({"label_names": names}, python2=False))
    (folder / "test_batch").write_bytes(valid_batch(python2=False))
    split = result_or_refusal(lambda: cifar.read_cifar(folder, "cifar10", "test"))
    if split is not None:
        assert_cifar_split(split)


# ------------------------------------------------------------------------------------------ config
DEFAULTS = config_to_dict(RunConfig())
KNOWN_KEYS = [
    f"{section}.{key}" for section, keys in DEFAULTS.items() if isinstance(keys, dict) for key in keys
]
KNOWN_KEYS += [key for key, value in DEFAULTS.items() if not isinstance(value, dict)]

yaml_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["resnet20", "cifar10", "randaugment", "topk_kd", "cosine", "nearest", "auto"]),
)
yaml_trees = st.recursive(
    yaml_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(
            st.one_of(st.sampled_from(sorted(DEFAULTS)), st.text(max_size=6)), children, max_size=3
        ),
    ),
    max_leaves=12,
)


@st.composite
def config_trees(draw: st.DrawFn) -> object:
    """Mostly known sections and keys with random values, sometimes anything at all."""
    if draw(st.integers(0, 4)) == 0:
        return draw(yaml_trees)
    tree: dict[str, object] = {}
    for dotted in draw(st.lists(st.sampled_from(KNOWN_KEYS), max_size=6, unique=True)):
        section, _, key = dotted.rpartition(".")
        value = draw(st.one_of(yaml_scalars, yaml_trees))
        if section:
            tree.setdefault(section, {})[key] = value
        else:
            tree[key] = value
    return tree


def assert_round_trips(result: object) -> None:
    """A resolved config written as YAML (the run folder's config.yaml) reads back equal."""
    assert isinstance(result, RunConfig)
    text = yaml.safe_dump(config_to_dict(result))
    assert build_config(yaml.safe_load(text)) == result


@fuzz(200)
@given(tree=config_trees())
def test_random_yaml_trees_load_or_are_refused(tmp_path_factory, tree):
    path = tmp_path_factory.mktemp("config") / "config.yaml"
    path.write_text(yaml.safe_dump(tree))
    result = result_or_refusal(lambda: load_config(path))
    if result is not None:
        assert_round_trips(result)
    direct = result_or_refusal(lambda: build_config(tree))
    if direct is not None:
        assert_round_trips(direct)


@fuzz(150)
@given(
    raw=st.one_of(
        st.binary(max_size=120),
        st.text(max_size=120).map(lambda text: text.encode("utf-8", "surrogatepass")),
        st.integers(0, 10**6).map(lambda cut: yaml.safe_dump(DEFAULTS).encode()[: cut % 1500]),
        st.sampled_from(
            [
                b"a: &a [*a]",
                b"seed: !!timestamp x",
                b"seed: !!binary '!!'",
                b"[" * 3000,
                b"seed: !!float nope",
                b"\xef\xbb\xbfseed: 1",
                b"train: {lr: .nan}",
                b"augment: {magnitude: .inf}",
            ]
        ),
    )
)
def test_random_and_truncated_files_load_or_are_refused(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("config") / "config.yaml"
    path.write_bytes(raw)
    result = result_or_refusal(lambda: load_config(path))
    if result is not None:
        assert_round_trips(result)


override_items = st.one_of(
    st.text(max_size=20),
    st.builds(lambda key, value: f"{key}={value}", st.sampled_from(KNOWN_KEYS), st.text(max_size=12)),
    st.builds(
        lambda key, value: f"{key}={yaml.safe_dump(value, default_flow_style=True).strip()}",
        st.sampled_from(KNOWN_KEYS),
        yaml_trees,
    ),
    st.sampled_from(["seed=!!python/name:os.system", "train.lr=[1", "a..b=1", "=1", "seed=\x00", 5, None]),
)


@fuzz(200)
@given(overrides=st.lists(override_items, max_size=4))
def test_random_overrides_parse_or_are_refused(overrides):
    tree = result_or_refusal(lambda: parse_overrides(overrides))
    assert tree is None or isinstance(tree, dict)
    result = result_or_refusal(lambda: load_config(None, overrides))
    if result is not None:
        assert_round_trips(result)


def test_an_alias_bomb_is_refused_quickly_with_a_short_message(tmp_path):
    """Nine levels of nine aliases: 9**10 leaves if expanded; the error message must not expand it."""
    inner = "&a0 [x, x, x, x, x, x, x, x, x]"
    for level in range(1, 10):
        inner = f"&a{level} [{inner}, " + ", ".join([f"*a{level - 1}"] * 8) + "]"
    path = tmp_path / "config.yaml"
    path.write_text(f"seed: {inner}\n")
    with pytest.raises(ValueError) as info:
        load_config(path)
    assert 0 < len(str(info.value)) < 500 and "\n" not in str(info.value)

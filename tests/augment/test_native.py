"""The native CPU kernels give the same bytes as the torch path, for every op, policy, shape and option.

The torch path is the one checked against Pillow (test_ops.py); here each batch goes through both
(``KDFORAA_NATIVE=0`` forces the torch path) and must come out identical.
"""

from __future__ import annotations

import shutil
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kdforaa.augment import AutoAugment, RandAugment, SingleOp, TrivialAugment, apply_params, native
from kdforaa.augment.apply import choose_backend
from kdforaa.augment.op_table import OP_NAMES
from kdforaa.augment.params import AugParams
from kdforaa.augment.pipeline import AugmentPipeline
from kdforaa.augment.random import make_keys

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler (cc) on this machine")


def both_paths(monkeypatch: pytest.MonkeyPatch, x: torch.Tensor, params: AugParams, **options) -> tuple:
    """``apply_params`` through the native kernels and through torch, in that order."""
    monkeypatch.delenv("KDFORAA_NATIVE", raising=False)
    assert choose_backend("auto", x.device, options.get("interpolation", "nearest")) == "native"
    fast = apply_params(x, params, **options)
    monkeypatch.setenv("KDFORAA_NATIVE", "0")
    assert choose_backend("auto", x.device, "nearest") == "torch"
    return fast, apply_params(x, params, **options)


def keys(n: int, seed: int = 0) -> torch.Tensor:
    return make_keys(seed, 0, torch.arange(n))


def special_images(channels: int, height: int, width: int) -> torch.Tensor:
    """Noise, few grey levels, a constant image and a two-level image: every table's corner cases."""
    generator = torch.Generator().manual_seed(height * 100 + width)
    noise = torch.randint(0, 256, (12, channels, height, width), generator=generator, dtype=torch.uint8)
    noise[4:8] = noise[4:8] // 64 * 85  # four grey levels
    noise[8] = 7  # constant
    noise[9] = torch.where(noise[9] > 128, 255, 0)  # two levels
    return noise


@pytest.mark.parametrize("op", [name for name in OP_NAMES if name != "identity"])
@pytest.mark.parametrize("level", [0.0, 3.0, 9.0, 15.0, 30.0, 1000.0])
def test_every_op_at_every_level_equals_the_torch_path(op, level, monkeypatch, fashion_rgb, fashion_grey):
    for x in (fashion_rgb, fashion_grey, special_images(3, 17, 23), special_images(1, 3, 3)):
        params = SingleOp(op, level).sample(keys(len(x)))
        fast, reference = both_paths(monkeypatch, x, params, fill=128)
        assert torch.equal(fast, reference), (op, level, tuple(x.shape))


@pytest.mark.parametrize(
    "policy",
    [
        RandAugment(2, 9),
        RandAugment(3, 20, 6.0, prob=0.7, ops=[n for n in OP_NAMES if n != "identity"]),
        AutoAugment("imagenet"),
        AutoAugment("cifar10", magnitude_scale=2.5),
        AutoAugment("svhn"),
        TrivialAugment(30),
    ],
    ids=["ra", "ra-all-ops", "aa-imagenet", "aa-cifar10-x2.5", "aa-svhn", "ta"],
)
def test_policies_equal_the_torch_path(policy, monkeypatch, noise_rgb_31x32, fashion_rgb):
    for x in (noise_rgb_31x32.repeat(8, 1, 1, 1), fashion_rgb.repeat(6, 1, 1, 1)):
        params = policy.sample(keys(len(x), seed=3))
        fast, reference = both_paths(monkeypatch, x, params, fill=policy.fill)
        assert torch.equal(fast, reference)


def test_crop_flip_and_cutout_of_the_pipeline_equal_the_torch_path(monkeypatch, fashion_rgb):
    pipeline = AugmentPipeline(RandAugment(2, 15), 28, 28, crop_padding=4, flip=True, cutout=8, fill=33)
    x = fashion_rgb.repeat(4, 1, 1, 1)
    params = pipeline.sample(keys(len(x)))
    fast, reference = both_paths(monkeypatch, x, params, fill=33)
    assert torch.equal(fast, reference)


def test_every_crop_offset_with_and_without_a_flip_equals_the_torch_path(monkeypatch):
    """Row runs (shifts, crops, mirrors) are copied row by row: every way a run can leave the image."""
    height, width = 9, 11
    offsets = [(top, left) for top in range(-10, 11, 3) for left in range(-12, 13)]
    batch = 2 * len(offsets)
    x = torch.randint(
        0, 256, (batch, 3, height, width), generator=torch.Generator().manual_seed(5), dtype=torch.uint8
    )
    params = AugParams(
        ops=torch.zeros(batch, 0, dtype=torch.int64),
        levels=torch.zeros(batch, 0),
        signs=torch.ones(batch, 0, dtype=torch.int8),
        applied=torch.zeros(batch, 0, dtype=torch.bool),
        crop=torch.tensor(offsets * 2),
        flip=torch.arange(batch) >= len(offsets),
    )
    fast, reference = both_paths(monkeypatch, x, params, fill=201)
    assert torch.equal(fast, reference)


def test_channels_last_and_sliced_batches_equal_the_torch_path(monkeypatch, noise_rgb_17x23):
    x = noise_rgb_17x23.repeat(4, 1, 1, 1)[::2].contiguous(memory_format=torch.channels_last)
    params = RandAugment(2, 12).sample(keys(len(x)))
    fast, reference = both_paths(monkeypatch, x, params)
    assert torch.equal(fast, reference) and fast.is_contiguous()


@settings(max_examples=40, deadline=None)
@given(
    channels=st.sampled_from([1, 3]),
    height=st.integers(1, 40),
    width=st.integers(1, 40),
    batch=st.integers(1, 9),
    num_ops=st.integers(0, 4),
    magnitude=st.floats(0, 100),
    fill=st.integers(0, 255),
    seed=st.integers(0, 2**31),
)
def test_any_shape_and_level_equals_the_torch_path(
    channels, height, width, batch, num_ops, magnitude, fill, seed
):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (batch, channels, height, width), generator=generator, dtype=torch.uint8)
    params = RandAugment(num_ops, magnitude, ops=OP_NAMES).sample(keys(batch, seed))
    with pytest.MonkeyPatch.context() as monkeypatch:
        fast, reference = both_paths(monkeypatch, x, params, fill=fill)
    assert torch.equal(fast, reference)


def test_the_result_does_not_depend_on_the_thread_count(monkeypatch, noise_rgb_31x32):
    x = noise_rgb_31x32.repeat(5, 1, 1, 1)
    params = RandAugment(2, 15).sample(keys(len(x)))
    threads = torch.get_num_threads()
    try:
        results = []
        for count in (1, 2, 3):
            torch.set_num_threads(count)
            results.append(apply_params(x, params))
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(r, results[0]) for r in results)


def test_bilinear_and_gpu_batches_stay_on_the_torch_path(noise_rgb_17x23):
    assert choose_backend("auto", noise_rgb_17x23.device, "bilinear") == "torch"
    assert choose_backend("auto", torch.device("meta"), "nearest") == "torch"


def test_an_explicit_backend_that_cannot_run_is_one_clear_line(noise_rgb_17x23):
    with pytest.raises(ValueError, match="backend='native' cannot run this batch: .*nearest"):
        apply_params(
            noise_rgb_17x23, RandAugment(2, 9).sample(keys(6)), interpolation="bilinear", backend="native"
        )
    with pytest.raises(ValueError, match="backend='cuda' is not one of auto, torch, native"):
        apply_params(noise_rgb_17x23, RandAugment(2, 9).sample(keys(6)), backend="cuda")


def test_the_torch_backend_can_be_asked_for_and_gives_the_same_bytes(noise_rgb_17x23):
    params = RandAugment(2, 15).sample(keys(6))
    fast = apply_params(noise_rgb_17x23, params, backend="native")
    assert torch.equal(apply_params(noise_rgb_17x23, params, backend="torch"), fast)


def test_without_a_compiler_the_torch_path_runs_and_says_why(monkeypatch, tmp_path, noise_rgb_17x23):
    params = RandAugment(2, 9).sample(keys(len(noise_rgb_17x23)))
    expected = apply_params(noise_rgb_17x23, params)
    monkeypatch.setenv("KDFORAA_NATIVE", "build")  # the run-time build only, even where a wheel's library is
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # no earlier build to reuse
    for compiler, reason in (("no-such-compiler-kdforaa", "no C compiler"), ("false", "C compiler failed")):
        monkeypatch.setenv("CC", compiler)
        native.reset()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                assert native.library() is None and native.describe() == "none"
                assert choose_backend("auto", noise_rgb_17x23.device, "nearest") == "torch"
                assert torch.equal(apply_params(noise_rgb_17x23, params), expected)
            (warning,) = [str(w.message) for w in caught]
            assert "slower torch path" in warning and reason in warning, warning
        finally:
            native.reset()


def test_a_compiler_without_march_native_gets_a_plain_build(monkeypatch, tmp_path, noise_rgb_17x23):
    compiler = tmp_path / "cc-without-march-native"
    compiler.write_text(
        '#!/bin/sh\nfor a in "$@"; do [ "$a" = "-march=native" ] && exit 1; done\nexec cc "$@"\n'
    )
    compiler.chmod(0o755)
    params = RandAugment(2, 15).sample(keys(len(noise_rgb_17x23)))
    expected = apply_params(noise_rgb_17x23, params)
    monkeypatch.setenv("CC", str(compiler))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("KDFORAA_NATIVE", "build")
    native.reset()
    try:
        assert native.describe() == "built:generic"
        assert list((tmp_path / "cache" / "kdforaa" / "native").glob("*.so"))
        assert torch.equal(apply_params(noise_rgb_17x23, params), expected)
    finally:
        native.reset()


def test_a_library_others_can_write_is_rebuilt_not_loaded(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("KDFORAA_NATIVE", "build")
    native.reset()
    try:
        assert native.library() is not None
        (built,) = (tmp_path / "kdforaa" / "native").glob("*.so")
        built.unlink()  # a new file: this process still runs the old one's code
        built.write_bytes(b"planted by someone else")
        built.chmod(0o666)
        native.reset()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # loading the planted file would fail with a warning
            assert native.library() is not None
        assert built.stat().st_mode & 0o022 == 0 and built.read_bytes().startswith(b"\x7fELF")
    finally:
        native.reset()

"""Every build of the native kernels gives the same bytes: the prebuilt library's baseline and AVX2 entries
(and its dispatching entry), the ``-march=native`` build made at run time, and the torch path.

Each build runs the recorded digests of test_golden_digests.py (every policy with crop, flip and cutout,
grey and RGB), every op at levels from 0 to 1000 on corner-case images, and random shapes and levels.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_golden_digests import DIGESTS, POLICIES, augmented_digest
from test_native import special_images

from kdforaa.augment import RandAugment, SingleOp, apply_params, native
from kdforaa.augment.native_library import Kernels, build_here, load_prebuilt
from kdforaa.augment.op_table import OP_NAMES
from kdforaa.augment.random import make_keys


def _cpu_has_avx2() -> bool:
    try:
        return " avx2 " in Path("/proc/cpuinfo").read_text().replace("\n", " ")
    except OSError:
        pytest.skip("cannot read /proc/cpuinfo to know whether the CPU has AVX2")


@pytest.fixture(scope="module")
def builds(prebuilt_library, tmp_path_factory) -> dict[str, Kernels]:
    """name -> loaded kernels, for every build this machine can run."""
    found = {
        "prebuilt": load_prebuilt(prebuilt_library),
        "prebuilt:baseline": load_prebuilt(prebuilt_library, "baseline"),
    }
    if _cpu_has_avx2():
        found["prebuilt:avx2"] = load_prebuilt(prebuilt_library, "avx2")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        found["built:native"] = build_here("cc")
    return found


def test_the_dispatcher_chooses_avx2_exactly_where_the_cpu_has_it(builds):
    assert builds["prebuilt"].level == ("avx2" if _cpu_has_avx2() else "baseline")
    assert builds["built:native"].level == "native"


@pytest.mark.parametrize("policy", list(POLICIES))
@pytest.mark.parametrize("variant", ["grey", "rgb"])
def test_every_build_gives_the_recorded_bytes(builds, policy, variant, monkeypatch, fashion_test_images):
    monkeypatch.delenv("KDFORAA_NATIVE", raising=False)
    for name, kernels in builds.items():
        with native.using(kernels):
            assert native.describe() == kernels.name
            assert augmented_digest(fashion_test_images, policy, variant) == DIGESTS[f"{policy}/{variant}"], (
                name
            )


def _outputs(builds: dict[str, Kernels], x: torch.Tensor, params, monkeypatch, fill: int) -> dict:
    """Each build's output, and the torch path's."""
    monkeypatch.delenv("KDFORAA_NATIVE", raising=False)
    out = {}
    for name, kernels in builds.items():
        with native.using(kernels):
            out[name] = apply_params(x, params, fill=fill, backend="native")
    out["torch"] = apply_params(x, params, fill=fill, backend="torch")
    return out


@pytest.mark.parametrize("op", [name for name in OP_NAMES if name != "identity"])
def test_every_op_gives_the_same_bytes_on_every_build(builds, op, monkeypatch, fashion_rgb):
    for x in (fashion_rgb, special_images(3, 17, 23), special_images(1, 5, 64)):
        for level in (0.0, 3.0, 9.0, 30.0, 1000.0):
            params = SingleOp(op, level).sample(make_keys(1, 0, torch.arange(len(x))))
            out = _outputs(builds, x, params, monkeypatch, fill=77)
            assert all(torch.equal(o, out["torch"]) for o in out.values()), (op, level, tuple(x.shape))


@settings(max_examples=25, deadline=None)
@given(
    channels=st.sampled_from([1, 3]),
    height=st.integers(1, 70),
    width=st.integers(1, 70),
    num_ops=st.integers(0, 4),
    magnitude=st.floats(0, 60),
    seed=st.integers(0, 2**31),
)
def test_random_shapes_and_levels_give_the_same_bytes_on_every_build(
    builds, channels, height, width, num_ops, magnitude, seed
):
    x = torch.randint(
        0, 256, (5, channels, height, width), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8
    )
    params = RandAugment(num_ops, magnitude, ops=OP_NAMES).sample(make_keys(seed, 0, torch.arange(5)))
    with pytest.MonkeyPatch.context() as monkeypatch:
        out = _outputs(builds, x, params, monkeypatch, fill=seed % 256)
    assert all(torch.equal(o, out["torch"]) for o in out.values())

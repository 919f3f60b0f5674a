"""The op contract: every op of the table has everything each backend runs it with, and each backend
runs it.

An op is one ``OpSpec`` in ``augment/op_table.py`` plus one kernel per backend: a torch kernel
(``kernels.py``) or inverse map (``affine.py``), a case of the C enum (``native_kernels.c``), a
branch of the Triton kernel (``triton_kernels.py``). Its public function (``ops.<name>``) and
RandAugment's op set are made from the table.
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

import pytest
import torch

from kdforaa.augment import apply_params, kernels, native_build, ops
from kdforaa.augment.op_table import BY_NAME, COLOUR_OPS, OP_NAMES, OPS
from kdforaa.augment.params import AugParams
from kdforaa.augment.policies import RANDAUGMENT_OPS


def test_each_kind_has_what_the_engine_runs_it_with():
    for spec in OPS:
        assert (spec.kernel is not None) == (spec.kind == "colour"), spec.name
        assert (spec.inverse_map is not None) == (spec.kind == "geometric"), spec.name
        assert (spec.native_code > 0) == (spec.kind == "colour"), spec.name
    codes = [spec.native_code for spec in OPS if spec.native_code]
    assert len(codes) == len(set(codes))


def test_an_op_with_a_level_rule_draws_its_first_argument_and_defaults_the_others():
    for spec in OPS:
        drawn, *others = spec.arguments or (None,)
        assert (drawn is not None) == (spec.level_rule is not None), spec.name
        assert drawn is None or drawn.default is None, spec.name
        assert all(other.default is not None for other in others), spec.name


def test_native_codes_are_the_c_enum():
    """native_kernels.c numbers its ops in an enum (OP_<NAME> = n): it must say what the table says."""
    source = Path(native_build.SOURCE).read_text()
    enum = {name.lower(): int(code) for name, code in re.findall(r"\bOP_([A-Z_]+) = (\d+)", source)}
    assert enum.pop("none") == 0
    assert enum == {spec.name: spec.native_code for spec in OPS if spec.native_code}


def test_the_table_kernels_are_the_kernels_module():
    for name in COLOUR_OPS:
        assert BY_NAME[name].kernel is getattr(kernels, name)


def test_every_op_is_a_public_function_with_the_tables_arguments_and_reference():
    assert sorted(ops.__all__) == sorted(OP_NAMES)
    for spec in OPS:
        function = getattr(ops, spec.name)
        parameters = list(inspect.signature(function).parameters)
        extra = ["fill", "interpolation"] if spec.kind == "geometric" else []
        assert parameters == ["x", *(a.name for a in spec.arguments), *extra], spec.name
        assert function.__name__ == spec.name and function.__doc__ == spec.reference


def test_randaugment_draws_the_papers_fourteen_ops_in_its_order():
    assert RANDAUGMENT_OPS == (
        "identity", "autocontrast", "equalize", "rotate", "solarize", "color", "posterize",
        "contrast", "brightness", "sharpness", "shear_x", "shear_y", "translate_x", "translate_y",
    )  # fmt: skip


def one_sample_per_op() -> tuple[torch.Tensor, AugParams]:
    """``(16,3,20,23)`` noise in 30..157 (460 pixels: equalize has enough to change them) and params
    giving sample ``i`` op ``i`` at level 7, sign +1: every op changes its image."""
    generator = torch.Generator().manual_seed(25)
    x = torch.randint(30, 158, (1, 3, 20, 23), generator=generator, dtype=torch.uint8).repeat(
        len(OPS), 1, 1, 1
    )
    n = len(OPS)
    params = AugParams(
        ops=torch.arange(n).view(n, 1),
        levels=torch.full((n, 1), 7.0),
        signs=torch.ones(n, 1, dtype=torch.int8),
        applied=torch.ones(n, 1, dtype=torch.bool),
    )
    return x, params


TRITON = pytest.param(
    "triton",
    marks=pytest.mark.skipif(sys.platform != "linux", reason="Triton is published for Linux only"),
)


@pytest.mark.parametrize("backend", ["native", TRITON])
def test_every_backend_runs_every_op_of_the_table(backend):
    """Each backend gives the torch backend's bytes for every op, and every op but identity changes the
    image: an op code a kernel does not handle (which leaves the image as it is) fails here."""
    x, params = one_sample_per_op()
    reference = apply_params(x, params, backend="torch")
    for i, spec in enumerate(OPS):
        assert torch.equal(reference[i], x[i]) == (spec.kind == "identity"), spec.name
    device = "cuda" if backend == "triton" and torch.cuda.is_available() else "cpu"
    out = apply_params(x.to(device), params, backend=backend).cpu()
    differs = [spec.name for i, spec in enumerate(OPS) if not torch.equal(out[i], reference[i])]
    assert not differs, f"{backend} differs from torch on {differs}"

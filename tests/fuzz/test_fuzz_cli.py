"""Fuzzing the command line as a careless or hostile user drives it: config overrides (``config --show``,
the level that accepts exactly what ``train`` accepts, plus a few real training runs), sweep files
(``sweep --dry-run``) and weights files (``eval``).

The only outcomes allowed: exit 0, or exit 2 with one ``kdforaa: error:`` line on stderr; never a
traceback, another code or a crash; and nothing written outside the folder the command was given.
Bounded to about a minute on two busy cores: the data is a 64-image fake Fashion-MNIST.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from fakedata import write_mnist_like
from kdforaa.cli import main
from kdforaa.config import RunConfig, config_keys, config_to_dict
from kdforaa.models.registry import build_model

pytestmark = pytest.mark.timeout(180)

# values a user might type, or a hostile file might hold, for any key
HOSTILE = [
    "", "0", "-1", "1", "3", "100000", "1e12", "-1e308", "nan", ".nan", ".inf", "-.inf", "true", "null",
    "[]", "[1, 2]", "{}", "{a: 1}", "'..'", "../..", "/proc/self/mem", "/sys", "x" * 300, "resnet8",
    "timm:nope", "folder", "cuda", "cpu", "randaugment", "kd", "topk_kd", "{stage9: 1}", "[stage1]",
    "'\\x00'", "&a [*a]", "!!python/object:os.system ls", "2.5", "0.0001",
]  # fmt: skip


def settings_for(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,  # the same cases every run: a failure is reproducible, the time predictable
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return write_mnist_like(tmp_path_factory.mktemp("fuzz") / "fashion", n_train=64, n_test=16).root


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def assert_clean_outcome(code: int, err: str, argv: list[str]) -> None:
    assert code in (0, 2), (argv, code, err)
    lines = [line for line in err.splitlines() if line.strip()]
    if code == 2:
        assert len(lines) == 1 and lines[0].startswith("kdforaa: error: "), (argv, err)
    else:
        assert all(line.startswith("kdforaa: warning: ") for line in lines), (argv, err)


def snapshot(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


def _defaults() -> dict[str, object]:
    flat: dict[str, object] = {}
    tree = config_to_dict(RunConfig())
    for key in config_keys():
        node: object = tree
        for part in key.split("."):
            node = node[part]  # type: ignore[index]
        flat[key] = node
    return flat


DEFAULTS = _defaults()


def plausible(key: str) -> st.SearchStrategy[str]:
    """Values near the key's default (half the time) or from :data:`HOSTILE`."""
    default = DEFAULTS[key]
    near: list[object] = [default]
    if isinstance(default, int | float) and not isinstance(default, bool):
        near += [default * 2, default + 1, 0, -default]
    elif isinstance(default, bool):
        near += [not default]
    return st.one_of(st.sampled_from([json.dumps(v) for v in near]), st.sampled_from(HOSTILE))


overrides = st.lists(
    st.sampled_from(config_keys()).flatmap(lambda key: plausible(key).map(lambda value: f"{key}={value}")),
    min_size=1,
    max_size=3,
)


@settings_for(120)
@given(items=overrides)
def test_config_show_refuses_in_one_line_or_accepts(items, tiny_root):
    argv = ["config", "--show", f"data.root={tiny_root}", *items]
    code, out, err = run_cli(argv)
    assert_clean_outcome(code, err, argv)
    if code == 0:
        assert isinstance(yaml.safe_load(out), dict)


SAFE_TRAIN = [
    "augment.policy=randaugment", "augment.magnitude=30", "augment.cutout=5", "augment.num_ops=0",
    "train.label_smoothing=0.5", "train.schedule=step", "train.warmup_epochs=3", "train.lr=100",
    "train.on_nan=skip", "train.eval_every=0", "augment.interpolation=bilinear", "seed=-5",
    "model.name=resnet14", "train.threads=1024", "augment.policy=trivialaugment", "data.limit=1",
]  # fmt: skip


@settings_for(4)
@given(items=st.lists(st.sampled_from(SAFE_TRAIN), min_size=1, max_size=3, unique=True))
def test_real_training_runs_end_in_0_or_2_inside_their_folder(items, tiny_root):
    with tempfile.TemporaryDirectory() as box:
        out = Path(box) / "run"
        fixed = [f"data.root={tiny_root}", "model.name=resnet8", "train.epochs=1", "train.batch_size=32"]
        argv = ["train", *fixed, *items, "train.threads=1", "--out", str(out), "--quiet"]
        code, _, err = run_cli(argv)
        assert_clean_outcome(code, err, argv)
        assert snapshot(Path(box)) <= snapshot(out) | {out}


NAMES = ["..", ".", "/", "../{seed}", "{seed}/..", "a/../../b", "~", "$HOME", "{seed}", "run.", "-"]
GRID_KEYS = ["train.lr", "seed", "augment.magnitude", "model.name", "train.epochs", "distill.method"]
sweeps = st.fixed_dictionaries(
    {
        "base": st.one_of(
            st.just({"model": {"name": "resnet8"}}),
            st.sampled_from(["missing.yaml", "/proc/self/status", "../../etc/passwd"]),
            st.just({"train": {"threads": 100000}}),
        ),
        "grid": st.dictionaries(
            st.sampled_from(GRID_KEYS),
            st.one_of(
                st.lists(st.sampled_from(HOSTILE), min_size=1, max_size=4),
                st.lists(st.sampled_from([1, 2, 0.5, 0.1]), min_size=1, max_size=3),
                st.integers(1, 60).map(lambda n: list(range(n))),
                st.dictionaries(st.sampled_from(["..", ".", "a", "/x"]), st.just({}), max_size=2),
            ),
            max_size=4,
        ),
    },
    optional={
        "name": st.sampled_from(NAMES),
        "seeds": st.one_of(st.lists(st.integers(-3, 3), min_size=1, max_size=3), st.just("x")),
    },
)


@settings_for(60)
@given(spec=sweeps)
def test_sweep_files_plan_inside_out_or_are_refused(spec):
    with tempfile.TemporaryDirectory() as box:
        path, out = Path(box) / "sweep.yaml", Path(box) / "out"
        path.write_text(yaml.safe_dump(spec))
        argv = ["sweep", str(path), "--out", str(out), "--dry-run"]
        code, _, err = run_cli(argv)
        assert_clean_outcome(code, err, argv)
        assert snapshot(Path(box)) <= snapshot(out) | {out, path}


@pytest.fixture(scope="module")
def resnet8_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return build_model("resnet8", 10, 1).state_dict()


META_KEYS = ["num_classes", "in_channels", "resolution", "student_resolution", "mean", "std", "architecture"]
DAMAGES = ["none", "nan", "int8", "bool", "shape", "missing", "extra", "half"]


def damaged(state: dict[str, torch.Tensor], damage: str) -> dict[str, torch.Tensor]:
    state = {k: v.clone() for k, v in state.items()}
    if damage == "nan":
        state["fc.weight"][0, 0] = float("nan")
    elif damage in ("int8", "bool"):
        state["fc.bias"] = state["fc.bias"].to(getattr(torch, damage))
    elif damage == "shape":
        state["fc.weight"] = torch.zeros(3, 3)
    elif damage == "missing":
        del state["fc.bias"]
    elif damage == "extra":
        state["unknown.weight"] = torch.zeros(1)
    elif damage == "half":
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    return state


@settings_for(30)
@given(
    damage=st.sampled_from(DAMAGES),
    metadata=st.dictionaries(
        st.sampled_from(META_KEYS), st.sampled_from([*HOSTILE, "[28, 28]", "10", "28"]), max_size=2
    ),
    as_torch=st.booleans(),
    flip=st.integers(0, 10**6),
)
def test_weight_files_evaluate_or_are_refused(damage, metadata, as_torch, flip, resnet8_state, tiny_root):
    with tempfile.TemporaryDirectory() as box:
        state = damaged(resnet8_state, damage)
        if as_torch:
            path = Path(box) / "w.pt"
            torch.save(state, path)
            raw = bytearray(path.read_bytes())
            if flip % 3 == 0:  # flip one byte somewhere
                raw[flip % len(raw)] ^= 0xFF
                path.write_bytes(bytes(raw))
        else:
            path = Path(box) / "w.safetensors"
            meta = {
                f"kdforaa.{k}": (v if k != "architecture" else json.dumps(v)) for k, v in metadata.items()
            }
            save_file(state, str(path), metadata=meta)
        argv = ["eval", str(path), "--model", "resnet8", "--data", "fashion-mnist", "--root", str(tiny_root)]
        code, _, err = run_cli(argv)
        assert_clean_outcome(code, err, argv)
        assert snapshot(Path(box)) == {path}

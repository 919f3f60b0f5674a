"""The second hardening round: each defect a hostile or careless user found, and the general rule behind
it, tested over its class.

Rules (each enforced in one place): output paths are checked before work starts (kdforaa.paths) and run
folders are made only under --out; every size a file declares or implies is bounded (kdforaa.limits);
``config --show`` accepts only what ``train`` accepts (train/preflight.py); every message on stderr is one
``kdforaa: error:``/``kdforaa: warning:`` line (kdforaa.console); Ctrl-C or SIGTERM at any moment ends
quietly and leaves no temporary file (kdforaa.atomic, kdforaa.console); loaded weights are finite
floating point (models/from_checkpoint.py).
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

from cli_helpers import TINY_TRAIN_ARGS, one_line_error
from kdforaa import atomic
from kdforaa.checkpoint import read_torch_file
from kdforaa.cli import main
from kdforaa.console import signals_as_exceptions
from kdforaa.data.folder import ImageFolder
from kdforaa.errors import BadInput, Terminated
from kdforaa.models.from_checkpoint import load_trained
from kdforaa.models.registry import build_model

SRC = Path(__file__).resolve().parents[2] / "src"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys, *argv: str) -> str:
    """The one line of a command that must be refused with exit 2."""
    code, _, err = run(capsys, *argv)
    assert code == 2, err
    line = one_line_error(err)
    assert line.startswith("kdforaa: error: "), line
    return line


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


# ------------------------------------------------------------------------------- weights files
@pytest.fixture(scope="module")
def resnet8_weights() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return build_model("resnet8", 10, 1).state_dict()


def write_safetensors(path: Path, weights: dict[str, torch.Tensor], **metadata: str) -> Path:
    save_file({k: v.contiguous() for k, v in weights.items()}, str(path), metadata=metadata)
    return path


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda w: w["fc.weight"].__setitem__((0, 0), float("nan")), "NaN or infinite"),
        (lambda w: w["stem.0.weight"].__setitem__((0, 0, 0, 0), float("inf")), "NaN or infinite"),
        (lambda w: w.__setitem__("fc.weight", w["fc.weight"].to(torch.int8)), "int8 values"),
        (lambda w: w.__setitem__("fc.bias", w["fc.bias"] > 0), "bool values"),
        (lambda w: w.__setitem__("fc.weight", w["fc.weight"].to(torch.int64)), "int64 values"),
    ],
)
def test_weights_that_are_not_finite_floating_point_are_refused(
    damage, problem, resnet8_weights, tmp_path, capsys
):
    weights = {k: v.clone() for k, v in resnet8_weights.items()}
    damage(weights)
    path = write_safetensors(tmp_path / "w.safetensors", weights)
    with pytest.raises(BadInput, match=problem):
        load_trained(str(path), architecture="resnet8")
    line = refused(capsys, "eval", str(path), "--model", "resnet8", "--data", "fashion-mnist")
    assert problem in line
    torch.save(weights, tmp_path / "w.pt")  # the same through a torch file
    assert problem in refused(capsys, "eval", str(tmp_path / "w.pt"), "--model", "resnet8", "--data", "mnist")


def test_clean_weights_still_load_with_their_integer_buffers(resnet8_weights, tmp_path):
    path = write_safetensors(tmp_path / "w.safetensors", resnet8_weights)
    trained = load_trained(str(path), architecture="resnet8")
    counts = {k: v for k, v in trained.model.state_dict().items() if k.endswith("num_batches_tracked")}
    assert counts and all(v.dtype == torch.int64 for v in counts.values())


@pytest.mark.parametrize(
    "metadata",
    [
        {"kdforaa.num_classes": "1000000000000"},
        {"kdforaa.num_classes": "0"},
        {"kdforaa.in_channels": "-1"},
        {"kdforaa.student_resolution": "-3"},
        {"kdforaa.student_resolution": "100000"},
        {"kdforaa.resolution": "[28, 0]"},
        {"kdforaa.resolution": "[28, 28, 28]"},
        {"kdforaa.resolution": "[28, 28]", "kdforaa.student_resolution": "29"},
        {"kdforaa.std": "[0.0]"},
    ],
)
def test_recorded_sizes_out_of_range_are_one_line_in_eval_and_train(
    metadata, resnet8_weights, tmp_path, capsys
):
    path = write_safetensors(
        tmp_path / "t.safetensors", resnet8_weights, **{"kdforaa.architecture": '"resnet8"', **metadata}
    )
    refused(capsys, "eval", str(path), "--data", "fashion-mnist")
    out = tmp_path / "run"
    refused(
        capsys,
        "train",
        *TINY_TRAIN_ARGS,
        f"teacher.checkpoint={path}",
        "distill.method=kd",
        "--out",
        str(out),
    )
    assert not (out / "config.yaml").exists()  # nothing that blocks the same --out


def test_a_coupled_teacher_must_fit_the_data_images(resnet8_weights, tmp_path, capsys):
    path = write_safetensors(
        tmp_path / "t.safetensors",
        resnet8_weights,
        **{"kdforaa.architecture": '"resnet8"', "kdforaa.student_resolution": "64"},
    )
    line = refused(capsys, "config", "--show", f"teacher.checkpoint={path}", "distill.method=kd")
    assert "between 1 and 28" in line


# ------------------------------------------------------------------------ checkpoint zip bombs
def test_a_checkpoint_zip_declaring_more_than_it_can_hold_is_refused_before_inflating(tmp_path):
    """A torch zip whose data.pkl inflates to 256 MiB from a file of a few hundred KB: refused from the
    sizes its directory declares, before torch allocates them."""
    path = tmp_path / "bomb.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("bomb/data.pkl", "w", force_zip64=True) as member:
            block = bytes(1 << 20)
            for _ in range(256):
                member.write(block)
        archive.writestr("bomb/version", "3\n")
    assert path.stat().st_size < 2 << 20
    with pytest.raises(BadInput, match="declares 268,435,4.. bytes in 2 members"):
        read_torch_file(path)
    ordinary = tmp_path / "ok.pt"
    torch.save({"w": torch.zeros(1000)}, ordinary)
    assert torch.equal(read_torch_file(ordinary)["w"], torch.zeros(1000))


# ----------------------------------------------------------------------------- data and config
def test_a_fifo_in_an_image_folder_is_refused_before_anything_reads_it(make_image_folder, tmp_path, capsys):
    data = make_image_folder()
    os.mkfifo(data.root / "train" / "cat" / "zzz.png")
    with pytest.raises(BadInput, match="zzz.png is not a regular file"):
        ImageFolder(data.root, "train", 8)
    out = tmp_path / "run"
    argv = ["data.name=folder", f"data.root={data.root}", "data.image_size=8", "model.name=resnet8"]
    line = refused(capsys, "train", *argv, "train.epochs=1", "--out", str(out), "--quiet")
    assert "not a regular file" in line and not (out / "config.yaml").exists()
    assert refused(capsys, "config", "--show", *argv) == line


@pytest.mark.parametrize(
    "override",
    [
        "train.threads=100000",
        "train.threads=20000",
        "data.num_workers=100000",
        "augment.policy=randaugment augment.num_ops=1000000000",
        "data.name=folder data.image_size=1000000",
        "model.name=resnet9",
        "augment.policy=randaugment augment.ops=[Sharpen]",
        "distill.student_resolution=29",
        "teacher.checkpoint=missing.pt distill.method=kd",
        "train.device=cuda:7",
    ],
)
def test_what_config_show_accepts_train_accepts(override, tmp_path, capsys):
    items = [*TINY_TRAIN_ARGS, *override.split()]
    shown = refused(capsys, "config", "--show", *items)
    trained = refused(capsys, "train", *items, "--out", str(tmp_path / "r"), "--quiet")
    assert shown == trained
    assert not (tmp_path / "r" / "config.yaml").exists()


def test_demo_and_bench_threads_are_bounded_too(tmp_path, capsys):
    assert "--threads" in refused(capsys, "demo", "--out", str(tmp_path / "d"), "--threads", "100000")
    assert "--threads" in refused(capsys, "bench", "step", "--threads", "20000")


# ------------------------------------------------------------------------------- sweeps
def sweep_file(tmp_path: Path, **extra) -> Path:
    spec = {"base": {"model": {"name": "resnet8"}, "train": {"epochs": 1}}, **extra}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize(
    "name, grid",
    [
        ("..", {"seed": [0]}),
        (".", {"seed": [0]}),
        ("{distill}", {"distill": {"..": {"method": "none"}}}),
        ("../{seed}", {"seed": [0]}),
        ("/etc/{seed}", {"seed": [0]}),
    ],
)
def test_sweep_run_folders_are_made_only_under_out(name, grid, tmp_path, capsys):
    out = tmp_path / "box" / "out"
    path = sweep_file(tmp_path, name=name, grid=grid)
    code, stdout, err = run(capsys, "sweep", str(path), "--out", str(out), "--dry-run")
    assert code == 0, err
    from kdforaa.experiments.sweep.plan import plan
    from kdforaa.experiments.sweep.spec import load_sweep

    _, runs = plan(load_sweep(path), out)
    assert runs and all(r.folder.parent == out.resolve() for r in runs)
    assert files_under(tmp_path / "box") <= files_under(out) | {out}


def test_a_huge_sweep_grid_is_refused_at_once(tmp_path, capsys):
    grid = {"train.lr": [0.1 * (i + 1) for i in range(100)], "seed": list(range(100)), "train.epochs": [1, 2]}
    path = sweep_file(tmp_path, grid=grid)
    start = time.perf_counter()
    line = refused(capsys, "sweep", str(path), "--out", str(tmp_path / "out"), "--dry-run")
    assert "more than 10,000 runs" in line and time.perf_counter() - start < 5
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------- output paths
@pytest.mark.parametrize(
    "argv",
    [
        ["export", "ckpt.pt", "--out", "{folder}"],
        ["export", "ckpt.pt", "--out", "/proc/self/x.safetensors"],
        ["export", "ckpt.pt", "--out", "/sys/x.safetensors"],
        ["export", "ckpt.pt", "--out", "{file}/x.safetensors"],
        ["export", "ckpt.pt", "--out", "{folder}/missing/x.safetensors"],
        ["augment-grid", "--out", "{folder}/grid"],
        ["augment-grid", "--out", "{folder}/grid.unknown"],
        ["augment-grid", "--out", "{folder}"],
        ["train", "--out", "/proc/run"],
        ["train", "--out", "{file}"],
        ["train", "--out", "{file}/run"],
        ["outliers", "--teacher", "t.pt", "--out", "/sys/kernel/x"],
        ["cache-teacher", "--teacher", "t.pt", "--out", "{file}"],
        ["sweep", "s.yaml", "--out", "/proc/x"],
        ["data", "fetch", "mnist", "--root", "{file}"],
        ["demo", "--out", "/dev/null"],
    ],
)
def test_output_path_problems_are_one_line_before_any_work(argv, tmp_path, capsys):
    folder, file = tmp_path / "folder", tmp_path / "file"
    folder.mkdir()
    file.write_text("x")
    argv = [a.format(folder=folder, file=file) for a in argv]
    refused(capsys, *argv)
    assert sorted(tmp_path.rglob("*")) == [file, folder]


# -------------------------------------------------------------------- stderr and signals
def test_python_warnings_are_one_line_each(monkeypatch, capsys):
    import kdforaa.models.registry as registry

    def warn_twice() -> list[str]:
        warnings.warn("first line of a warning\nand a second line", UserWarning, stacklevel=1)
        warnings.warn("kdforaa: a warning naming the program", RuntimeWarning, stacklevel=1)
        return []

    monkeypatch.setattr(registry, "available_models", warn_twice)
    code, _, err = run(capsys, "models")
    assert code == 0
    assert err.splitlines() == [
        "kdforaa: warning: first line of a warning",
        "kdforaa: warning: a warning naming the program",
    ]


def test_a_write_interrupted_by_sigterm_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def write(fh: io.BufferedWriter) -> None:
        fh.write(b"partial")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the signal arrives first

    with signals_as_exceptions(), pytest.raises(Terminated):
        atomic.write_with(target, write)
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"] and target.read_bytes() == b"old"


EXPORT_KILLED_MIDWAY = """
import os, signal, sys, time
import kdforaa.models.export as export
def slow_save(tensors, path, metadata=None):
    open(path, "wb").write(b"x" * 100000)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)
export.save_file = slow_save
from kdforaa.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_during_export_leaves_no_temporary_file(resnet8_weights, tmp_path):
    source = write_safetensors(tmp_path / "in.safetensors", resnet8_weights)
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", EXPORT_KILLED_MIDWAY, "export", str(source), "--model", "resnet8",
         "--out", str(out / "w.safetensors")],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(SRC)},
    )  # fmt: skip
    assert done.returncode == 128 + signal.SIGTERM
    assert one_line_error(done.stderr) == "kdforaa: error: terminated (SIGTERM)"
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_starting_or_loading_data_is_quiet(signum, tmp_path):
    """Sent while the command imports torch and loads the data set (or, on a fast machine, during its
    first steps, where training checkpoints first): one line, the signal's exit code, no temporary file
    and nothing that blocks --out."""
    out = tmp_path / "run"
    child = subprocess.Popen(
        [sys.executable, "-m", "kdforaa", "train", *TINY_TRAIN_ARGS, "--out", str(out), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # not ignored, as in a shell's & job
    )  # fmt: skip
    time.sleep(1.0)
    child.send_signal(signum)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 128 + signum, err
    assert one_line_error(err) == (
        "kdforaa: error: interrupted (Ctrl-C)"
        if signum == signal.SIGINT
        else "kdforaa: error: terminated (SIGTERM)"
    )
    leftovers = [p for p in out.rglob("*")] if out.exists() else []
    assert not [p for p in leftovers if p.name.endswith(".tmp")]
    assert not (out / "config.yaml").exists() or (out / "last.pt").exists()


def test_a_run_that_fails_before_its_first_checkpoint_leaves_its_out_reusable(monkeypatch, tmp_path, capsys):
    from kdforaa.errors import TrainingError
    from kdforaa.train.loop import Trainer

    def fail(self, *args):
        raise TrainingError("non-finite loss at epoch 1 step 1 (injected)")

    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "train_step", fail)
        code, _, err = run(capsys, "train", *TINY_TRAIN_ARGS, "--out", str(out), "--quiet")
    assert code == 1 and one_line_error(err) == "kdforaa: error: non-finite loss at epoch 1 step 1 (injected)"
    assert not (out / "config.yaml").exists() and not (out / ".lock").exists()
    code, _, err = run(capsys, "train", *TINY_TRAIN_ARGS, "--out", str(out), "--quiet")
    assert code == 0, err

"""The command line: exit codes, one-line errors, and a tiny train -> eval round trip."""

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

from cli_helpers import TINY_TRAIN_ARGS, one_line_error
from kdforaa.cli import main

TINY = TINY_TRAIN_ARGS


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", *TINY, "--out", str(out), "--quiet"]) == 0
    return out


def test_train_then_eval(trained, capsys):
    code, out, _ = run(capsys, "eval", str(trained / "best.pt"), "--device", "cpu", "--limit", "30")
    assert code == 0
    assert "accuracy" in out and "fashion-mnist test" in out and "(30 images)" in out  # not the run's 100
    assert "(100 images)" in run(capsys, "eval", str(trained / "best.pt"), "--device", "cpu")[1]  # the run's
    assert " parameters, " in out and " img/s inference" in out


def test_train_prints_where_results_are(tmp_path, capsys):
    code, out, _ = run(capsys, "train", *TINY, "--out", str(tmp_path / "r"), "--quiet")
    assert code == 0
    assert out.strip().splitlines()[-1].endswith(str((tmp_path / "r").resolve()))


def test_unknown_config_key_suggests_the_closest(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  epochz: 1\n")
    code, _, err = run(capsys, "train", str(cfg), "--out", str(tmp_path / "r"))
    assert code == 2
    assert "'train.epochz' (did you mean 'train.epochs'?)" in one_line_error(err)
    for typo, meant in (("distill.temprature=2", "distill.temperature"), ("trian.lr=1", "train")):
        code, _, err = run(capsys, "config", "--show", typo)
        assert code == 2 and f"(did you mean {meant!r}?)" in one_line_error(err)
    code, _, err = run(capsys, "config", "--show", "zzz=1")
    assert code == 2 and "did you mean" not in one_line_error(err)


def test_wrong_value_type(tmp_path, capsys):
    code, _, err = run(capsys, "train", "train.epochs=many", "--out", str(tmp_path / "r"))
    assert code == 2
    assert "train.epochs" in one_line_error(err)


def test_missing_data_files(tmp_path, capsys):
    code, _, err = run(capsys, "train", f"data.root={tmp_path}", "--out", str(tmp_path / "r"))
    assert code == 2
    assert "train-images-idx3-ubyte" in one_line_error(err)


def test_out_folder_with_another_run(trained, capsys):
    before = sorted(p.name for p in trained.iterdir())
    code, _, err = run(capsys, "train", *TINY, "--out", str(trained))
    assert code == 2
    assert "--resume" in one_line_error(err)
    assert sorted(p.name for p in trained.iterdir()) == before


def test_unreadable_checkpoint(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    code, _, err = run(capsys, "eval", str(bad))
    assert code == 2
    assert "bad.pt" in one_line_error(err)


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_pickle_payload_checkpoint_never_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pt"
    torch.save({"kdforaa": "0.1.0", "model": {}, "payload": _Payload()}, evil)
    code, _, err = run(capsys, "eval", str(evil))
    assert code == 2
    assert "refusing to unpickle" in one_line_error(err)
    assert not (tmp_path / "pwned").exists()


def test_non_kdforaa_checkpoint(tmp_path, capsys):
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    code, _, err = run(capsys, "eval", str(other))
    assert code == 2
    assert "not a kdforaa checkpoint" in one_line_error(err)


def test_kdforaa_checkpoint_without_its_model_description(tmp_path, capsys):
    bare = tmp_path / "bare.pt"
    torch.save({"kdforaa": "0.1.0", "model": {}}, bare)
    code, _, err = run(capsys, "eval", str(bare))
    assert code == 2
    assert "bare.pt" in one_line_error(err) and "model description" in err


def test_models_lists_the_zoo(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0
    assert "resnet8" in out and "wrn_40_2" in out and "timm:" in out


def test_help_via_python_m():
    result = subprocess.run(
        [sys.executable, "-m", "kdforaa", "train", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "--resume" in result.stdout


def test_bad_subcommand_is_exit_2():
    result = subprocess.run([sys.executable, "-m", "kdforaa", "fly"], capture_output=True, text=True)
    assert result.returncode == 2


def test_augment_grid_writes_a_png(tmp_path, capsys):
    out = tmp_path / "grid.png"
    code, stdout, _ = run(capsys, "augment-grid", "--out", str(out), "--count", "2", "--levels", "0,15")
    assert code == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(out.resolve()) in stdout


@pytest.mark.parametrize("argv", [["--policy", "spin"], ["--count", "0"]])
def test_augment_grid_bad_input(tmp_path, capsys, argv):
    code, _, err = run(capsys, "augment-grid", "--out", str(tmp_path / "g.png"), *argv)
    assert code == 2
    one_line_error(err)


def test_overrides_may_follow_the_options(tmp_path, capsys):
    out = tmp_path / "r"
    code, _, _ = run(capsys, "train", "--out", str(out), "--quiet", *TINY, "seed=3")
    assert code == 0
    assert "seed: 3" in (out / "config.yaml").read_text()


def test_stray_option_is_refused(tmp_path, capsys):
    code, _, err = run(capsys, "train", "--out", str(tmp_path / "r"), "--bogus")
    assert code == 2
    assert one_line_error(err) == "kdforaa: error: unrecognized arguments: --bogus (see kdforaa --help)"


@pytest.mark.parametrize(
    "argv",
    [[], ["nonsense"], ["train", "--out"], ["eval"], ["sweep", "--jobs", "many"], ["config"]],
)
def test_usage_mistakes_are_one_line_exit_2(argv, capsys):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert one_line_error(err).startswith("kdforaa: error: ")


def test_bench_step_reports_all_configurations(capsys):
    code, out, _ = run(capsys, "bench", "step", "--steps", "2", "--repeats", "1", "--batch", "32")
    assert code == 0
    for label in ("(a) CE step", "(b) KDforAA, online", "(c) KDforAA, cached", "(d) CE step + teacher"):
        assert label in out
    assert "time (b)/(d)" in out


def test_an_augment_backend_that_cannot_run_on_the_device_is_exit_2_before_anything_is_written(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # outside the interpreter Triton needs CUDA
    out = tmp_path / "r"
    code, _, err = run(
        capsys, "train", *TINY, "train.device=cpu", "augment.backend=triton", "--out", str(out)
    )
    assert code == 2
    assert "backend='triton'" in one_line_error(err) and "TRITON_INTERPRET=1" in err
    assert not out.exists()
    code, _, err = run(capsys, "train", *TINY, "augment.backend=gpu", "--out", str(out))
    assert code == 2 and "augment.backend" in one_line_error(err)


def test_bad_input_leaves_the_out_folder_usable(tmp_path, capsys):
    out = tmp_path / "r"
    code, _, _ = run(capsys, "train", "--out", str(out), f"data.root={tmp_path / 'nowhere'}", *TINY)
    assert code == 2
    assert not (out / "config.yaml").exists() and not (out / ".lock").exists()
    code, _, _ = run(capsys, "train", "--out", str(out), "--quiet", *TINY)
    assert code == 0


def test_config_show_prints_the_resolved_config_and_schema_every_key(tmp_path, capsys):
    from kdforaa.config import config_keys, load_config

    cfg = tmp_path / "c.yaml"
    cfg.write_text("model:\n  name: resnet8\naugment:\n  policy: randaugment\n")
    code, out, _ = run(capsys, "config", "--show", str(cfg), "train.epochs=3")
    assert code == 0
    shown = yaml.safe_load(out)
    assert shown["model"]["name"] == "resnet8" and shown["train"]["epochs"] == 3
    assert shown["distill"]["k"] == 3  # defaults filled in
    resolved = tmp_path / "resolved.yaml"
    resolved.write_text(out)
    assert load_config(resolved) == load_config(cfg, ["train.epochs=3"])
    code, out, _ = run(capsys, "config", "--schema")
    assert code == 0
    schema = json.loads(out)
    sections = {name: schema["$defs"][ref["$ref"].rsplit("/", 1)[1]] for name, ref in (
        (n, p) for n, p in schema["properties"].items() if "$ref" in p)}  # fmt: skip
    listed = {f"{s}.{k}" for s, d in sections.items() for k in d["properties"]} | set(schema["properties"])
    assert set(config_keys()) <= listed
    assert sections["train"]["properties"]["epochs"]["default"] == 10
    assert sections["train"]["properties"]["epochs"]["description"] == "training epochs"
    code, _, err = run(capsys, "config", "--schema", "train.epochs=3")
    assert code == 2 and "--schema" in one_line_error(err)
    code, out, _ = run(capsys, "config", "--markdown")
    assert code == 0 and "| `train.epochs` | 10 | training epochs |" in out.splitlines()


def test_a_closed_pipe_ends_the_command_quietly():
    """``kdforaa models | head -3``: the reader leaves before the output is written."""
    child = subprocess.Popen(
        [sys.executable, "-m", "kdforaa", "models"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    child.stdout.close()  # long before the child has imported torch and printed
    err = child.stderr.read().decode()
    assert child.wait(timeout=120) == 141 and err == ""


def test_an_internal_value_error_is_exit_1_with_its_traceback_under_debug(monkeypatch, capsys):
    import kdforaa.models.registry as registry

    def broken():
        raise ValueError("a bug, not the user's input\nsecond line")

    monkeypatch.setattr(registry, "available_models", broken)
    code, _, err = run(capsys, "models")
    assert code == 1 and "Traceback" not in err
    assert one_line_error(err) == (
        "kdforaa: error: internal error: ValueError: a bug, not the user's input "
        "(run again with --debug for the traceback)"
    )
    for argv in (["--debug", "models"], ["models", "--debug"]):
        code, _, err = run(capsys, *argv)
        assert code == 1 and "Traceback" in err and "in broken" in err


def test_debug_logs_which_augmentation_kernels_run(capsys, tmp_path):
    from kdforaa.augment import native

    native.reset()  # looked for again, so that the line is logged in this command
    code, _, err = run(capsys, "--debug", "augment-grid", "--out", str(tmp_path / "g.png"), "--count", "2")
    assert code == 0 and f"augmentation kernels: {native.describe()}" in err
    native.reset()
    code, _, err = run(capsys, "augment-grid", "--out", str(tmp_path / "g.png"), "--count", "2")
    assert code == 0 and "augmentation kernels" not in err  # without --debug: not shown


@pytest.mark.parametrize(
    ("argv", "key"),
    [
        (["augment-grid", "--data", "imagenet"], "data.name"),
        (["augment-grid", "--num-ops", "-1"], "augment.num_ops"),
    ],
)
def test_bad_options_validated_as_config_keys_are_bad_input(tmp_path, capsys, argv, key):
    code, _, err = run(capsys, *argv, "--out", str(tmp_path / "g.png"))
    assert code == 2 and f"config key {key!r}" in one_line_error(err)


def test_eval_with_an_unknown_data_set_is_bad_input(trained, capsys):
    code, _, err = run(capsys, "eval", str(trained / "best.pt"), "--data", "imagenet")
    assert code == 2 and "config key 'data.name'" in one_line_error(err)


def test_progress_off_a_terminal_is_one_line_per_epoch(tmp_path, capsys, trained):
    """Captured output is not a terminal: no carriage-return bars, one line per epoch."""
    code, out, err = run(capsys, "train", *TINY, "train.epochs=2", "--out", str(tmp_path / "r"))
    assert code == 0 and "\r" not in out + err
    assert [line.split(":")[0] for line in out.splitlines() if line.startswith("epoch ")] == [
        "epoch 1/2",
        "epoch 2/2",
    ]
    code, out, err = run(
        capsys, "cache-teacher", *TINY, "--teacher", str(trained / "best.pt"), "--epochs", "2",
        "--out", str(tmp_path / "cache"),
    )  # fmt: skip
    assert code == 0 and "\r" not in out + err
    assert [line.split(" done")[0] for line in err.splitlines()] == [
        "caching teacher logits: epoch 1/2",
        "caching teacher logits: epoch 2/2",
    ]

"""The GPU check's figures say which code ran, without a GPU: a ``triton`` row whose kernels failed to
compile is labelled as the torch path, the backend benchmark refuses it, and the check's summary shows it.

The benchmark's backend suite runs here on a tiny batch, its Triton rows in Triton's interpreter
(``TRITON_INTERPRET=1``, set by tests/conftest.py on a machine without CUDA).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from kdforaa.augment.apply import triton_fallback

if sys.platform != "linux" or torch.cuda.is_available():
    pytest.skip("the Triton rows run in Triton's interpreter on a Linux machine without CUDA")

from kdforaa.augment import triton_kernels  # noqa: E402  (imports Triton: after the platform check)

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "scripts")]  # bench_augment.py, gpu_check.py
import bench_augment  # noqa: E402
import gpu_check  # noqa: E402

TINY = (bench_augment.GpuCase(8, 2, None, None),)


def test_a_triton_row_that_fell_back_is_labelled_refused_and_shown(monkeypatch, tmp_path, capsys):
    randaugment = {"RandAugment(2, 9)": bench_augment.BACKEND_POLICIES["RandAugment(2, 9)"]}
    monkeypatch.setattr(bench_augment, "BACKEND_POLICIES", randaugment)  # one policy keeps it quick
    rows = bench_augment.backend_suite(torch.device("cpu"), TINY, repeats=1, calls=1)
    ran = {(row["policy"], row["contender"]): row["ran"] for row in rows}
    assert ran[("RandAugment(2, 9)", "triton")] == "triton" and triton_fallback() is None
    bench_augment.refuse_fallbacks(rows)  # every row ran its own code

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("PTXAS error: simulated")

    monkeypatch.setattr(triton_kernels, "_compile", fail)
    monkeypatch.setattr(triton_kernels, "_failure", None)
    with pytest.warns(RuntimeWarning, match="simulated"):
        rows = bench_augment.backend_suite(torch.device("cpu"), TINY, repeats=1, calls=1)
    fallen = [row for row in rows if row["contender"] == "triton"]
    assert fallen and all(
        row["ran"] == "torch path (Triton failed: RuntimeError: PTXAS error: simulated)" for row in fallen
    )
    assert all(row["same_bytes"] == "yes" for row in rows if row["contender"] != "kornia")  # the torch path
    with pytest.raises(SystemExit, match="rows not measured on their own code: triton ran torch path"):
        bench_augment.refuse_fallbacks(rows)

    (tmp_path / "augment.json").write_text(json.dumps({"device": "cpu", "rows": rows}))
    (tmp_path / "stages.tsv").write_text(f"env\t0\t3\tenv.log\naugment\t1\t9\t{tmp_path}/augment.log\n")
    capsys.readouterr()
    assert gpu_check.summary(tmp_path) == 1
    table = capsys.readouterr().out
    assert "| augment | FAILED (exit 1) | 9 |" in table
    assert "RandAugment(2, 9), triton (ran: torch path (Triton failed" in table
    assert "stage syncs did not finish" in table and "stage step did not finish" in table


def test_the_summary_shows_every_stage_and_figure(tmp_path, capsys):
    """The table from stage files shaped as the stages write them (env.json, syncs.json, step.json)."""
    env = {
        "device": "NVIDIA H100",
        "torch": "2.11.0",
        "python": "3.12.3",
        "modules": [{"module": "triton", "version": "3.6.0"}, {"module": "kornia", "version": "0.9.0"}],
    }
    syncs = {
        "syncs_per_step": 0,
        "syncs_first_step": 2,
        "backend": "triton",
        "kernels": [{"registers": 64, "spills": 0, "warps": 4, "constants": {"C": 3, "BLOCK": 256}}],
    }
    step = {"rows": [{"images": "32x32", "batch": 256, "pair": "resnet8x4 <- resnet32x4", "ran": "triton",
                      "img_per_s": 50000.0, "share": 0.02, "usual_img_per_s": 9000.0}]}  # fmt: skip
    for name, content in (("env", env), ("syncs", syncs), ("step", step)):
        (tmp_path / f"{name}.json").write_text(json.dumps(content))
    (tmp_path / "stages.tsv").write_text("env\t0\t3\te.log\nsyncs\t0\t20\ts.log\naugment\t124\t110\ta.log\n")
    assert gpu_check.summary(tmp_path) == 1
    table = capsys.readouterr().out
    assert "## GPU check: NVIDIA H100, torch 2.11.0, Python 3.12.3" in table
    assert "versions: triton 3.6.0, kornia 0.9.0" in table and "| augment | TIMED OUT | 110 |" in table
    assert "| host syncs per training step (Trainer.train_step, triton) | 0 (first step 2) |" in table
    assert "64 registers, 0 spilled, 4 warps" in table
    assert "50,000 img/s; augmentation 2.0% of the step; usual loop 9,000 img/s" in table
    assert "stage augment did not finish" in table

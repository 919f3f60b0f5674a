"""The Python stages of the GPU check (scripts/gpu_check.sh runs them, each in its own process).

    python scripts/gpu_check.py env KIT_JSON OUT_JSON  # versions, device, every module the check imports
    python scripts/gpu_check.py syncs OUT_JSON         # host syncs per training step; kernels' registers
    python scripts/gpu_check.py summary RESULTS        # the one table, from the stages' JSON files

``env`` needs no GPU: it says what would run (and exits 1 when a module the check needs does not import,
naming it). ``syncs`` trains a few steps of resnet8 on Fashion-MNIST with RandAugment on the device and
counts, with torch's sync debug mode, the host syncs inside each ``Trainer.train_step``; it then reads
the register count, spills and warps of every Triton kernel compiled in the process. ``summary`` turns
the JSON files the stages wrote (``env.json``, ``syncs.json``, ``augment.json``, ``step.json``) and the
shell's ``stages.tsv`` into one Markdown table, missing figures marked with the stage that failed.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

# The distribution behind a module whose name differs from it (for its version).
DISTRIBUTIONS = {"yaml": "pyyaml", "PIL": "pillow"}


# --------------------------------------------------------------------------------------------- env
def module_row(name: str) -> dict[str, Any]:
    """Whether ``name`` imports, its version and the file it came from."""
    row: dict[str, Any] = {"module": name}
    try:
        module = importlib.import_module(name)
    except Exception as err:  # noqa: BLE001 - any failure to import is what the report is for
        row["error"] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:200]
        return row
    top = name.split(".")[0]
    try:
        row["version"] = importlib.metadata.version(DISTRIBUTIONS.get(top, top))
    except importlib.metadata.PackageNotFoundError:  # kdforaa itself: a copy of src/, not installed
        row["version"] = getattr(importlib.import_module(top), "__version__", "?")
    row["file"] = str(getattr(module, "__file__", None))
    return row


def environment(kit_json: Path, out: Path) -> int:
    import torch

    kit = json.loads(kit_json.read_text())
    rows = [module_row(name) for name in kit["check_modules"]]
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "kit_python": kit["python"],
        "torch": torch.__version__,
        "cuda_build": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "modules": rows,
    }
    if torch.cuda.is_available():
        report["device"] = torch.cuda.get_device_name()
        report["capability"] = "sm_{}{}".format(*torch.cuda.get_device_capability())
    from kdforaa.augment import native
    from kdforaa.augment.apply import describe_backend

    report["native_kernels"] = native.describe()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    report["auto_backend"] = describe_backend("auto", device, "nearest")
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"Python {report['python']} (kit for {kit['python']}), torch {torch.__version__} (CUDA build "
          f"{torch.version.cuda}), CUDA available: {report['cuda_available']}, "
          f"device: {report.get('device', 'none')} {report.get('capability', '')}")  # fmt: skip
    print(f"native kernels: {report['native_kernels']}; backend auto on {device}: {report['auto_backend']}")
    print("| module | version | from |\n|---|---|---|")
    for row in rows:
        print(
            f"| {row['module']} | {row.get('version', 'NOT IMPORTED')} "
            f"| {row.get('file', row.get('error'))} |"
        )
    failed = [row["module"] for row in rows if "error" in row]
    if failed:
        print(f"gpu_check: these modules do not import: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


# ------------------------------------------------------------------------------------------- syncs
def kernel_resources() -> list[dict[str, Any]]:
    """Registers per thread, spilled bytes and warps of each Triton augmentation kernel compiled so far."""
    from kdforaa.augment import triton_kernels

    found: list[dict[str, Any]] = []
    for cache in getattr(triton_kernels._augment_kernel, "device_caches", {}).values():
        for compiled in cache[0].values():
            try:  # Triton's compiled-kernel object is not a stable API: report what this version has
                compiled._init_handles()
                src = compiled.src
                constants = getattr(src, "constexprs", None) or getattr(src, "constants", {})
                names = triton_kernels._augment_kernel.arg_names
                named = {
                    names[k[0]] if isinstance(k, tuple) else str(k): v
                    for k, v in constants.items()
                    if isinstance(v, (int, bool))
                }
                found.append(
                    {"registers": compiled.n_regs, "spills": compiled.n_spills,
                     "warps": compiled.metadata.num_warps, "constants": named}
                )  # fmt: skip
            except Exception as err:  # noqa: BLE001
                found.append({"registers": "?", "spills": "?", "warps": "?", "constants": repr(err)[:100]})
    return found


def sync_count(out: Path, steps: int = 12) -> int:
    import torch

    from kdforaa.augment.apply import choose_backend
    from kdforaa.config import build_config
    from kdforaa.train.loop import Trainer

    if not torch.cuda.is_available():
        print("gpu_check: syncs needs CUDA", file=sys.stderr)
        return 1
    config = build_config(
        {
            "data": {"limit": 128 * steps, "test_limit": 256},
            "model": {"name": "resnet8"},
            "augment": {"policy": "randaugment", "magnitude": 9, "backend": "auto"},
            "train": {"batch_size": 128, "epochs": 1, "device": "cuda"},
        }
    )
    per_step: list[int] = []
    messages: list[str] = []
    with tempfile.TemporaryDirectory() as folder:
        trainer = Trainer(config, Path(folder) / "run", progress=False)
        step = trainer.train_step

        def counted(*args: Any) -> None:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")
                try:
                    step(*args)
                finally:
                    torch.cuda.set_sync_debug_mode("default")
            syncing = [str(w.message) for w in caught if "synchroniz" in str(w.message).lower()]
            per_step.append(len(syncing))
            messages.extend(syncing)

        trainer.train_step = counted  # type: ignore[method-assign, assignment]
        start = time.perf_counter()
        trainer.run()
        seconds = time.perf_counter() - start
    probe = torch.zeros(1, 3, 8, 8, dtype=torch.uint8, device="cuda")
    report: dict[str, Any] = {
        "syncs_per_step": statistics.median(per_step[1:] or per_step),
        "syncs_first_step": per_step[0] if per_step else None,
        "steps": len(per_step),
        "examples": sorted(set(messages))[:5],
        "backend": choose_backend("auto", probe.device, "nearest"),
        "run_seconds": seconds,
        "kernels": kernel_resources(),
    }
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"host syncs per training step (median of {len(per_step) - 1} after the first): "
          f"{report['syncs_per_step']}; first step: {report['syncs_first_step']}")  # fmt: skip
    for message in report["examples"]:
        print(f"  e.g. {message.splitlines()[0][:160]}")
    for kernel in report["kernels"]:
        print(f"Triton kernel {kernel['constants']}: {kernel['registers']} registers, "
              f"{kernel['spills']} spilled, {kernel['warps']} warps")  # fmt: skip
    return 0


# ----------------------------------------------------------------------------------------- summary
def _load(results: Path, name: str) -> Any:
    path = results / name
    return json.loads(path.read_text()) if path.is_file() else None


def summary(results: Path) -> int:
    """One Markdown table of the figures the stages recorded; stage outcomes first."""
    stages = [line.split("\t") for line in (results / "stages.tsv").read_text().splitlines() if line]
    env, syncs = _load(results, "env.json") or {}, _load(results, "syncs.json")
    augment, step = _load(results, "augment.json"), _load(results, "step.json")
    print(f"\n## GPU check: {env.get('device', 'no CUDA device')}, torch {env.get('torch', '?')}, "
          f"Python {env.get('python', '?')}")  # fmt: skip
    versions = {row["module"]: row.get("version", "missing") for row in env.get("modules", [])}
    print(
        "versions: " + ", ".join(f"{m} {versions[m]}" for m in ("triton", "timm", "kornia") if m in versions)
    )
    print("\n| stage | result | seconds | log |\n|---|---|---|---|")
    for name, rc, seconds, log in stages:
        outcome = {"0": "ok", "124": "TIMED OUT"}.get(rc, f"FAILED (exit {rc})")
        print(f"| {name} | {outcome} | {seconds} | {log} |")
    print("\n| figure | value |\n|---|---|")
    if augment is None:
        print("| augmentation backends | — (stage augment did not finish) |")
    else:
        for row in augment["rows"]:
            print(
                f"| {row['images']} B={row['batch']} {row['policy']}, {row['contender']} "
                f"(ran: {row['ran']}) | "
                f"{row['img_per_s']:,.0f} img/s; {row['launches']} launches, {row['syncs']} syncs per batch; "
                f"same bytes: {row['same_bytes']}; {row['verdict'] or 'no target'} |"
            )
    if syncs is None:
        print("| host syncs per training step | — (stage syncs did not finish) |")
    else:
        print(f"| host syncs per training step (Trainer.train_step, {syncs['backend']}) | "
              f"{syncs['syncs_per_step']} (first step {syncs['syncs_first_step']}) |")  # fmt: skip
        for kernel in syncs["kernels"]:
            print(f"| Triton kernel {kernel['constants']} | {kernel['registers']} registers, "
                  f"{kernel['spills']} spilled, {kernel['warps']} warps |")  # fmt: skip
    if step is None:
        print("| augmentation share of the distillation step | — (stage step did not finish) |")
    else:
        for row in step["rows"]:
            print(f"| distillation step {row['images']} B={row['batch']} {row['pair']}: "
                  f"ours ({row['ran']}) | "
                  f"{row['img_per_s']:,.0f} img/s; augmentation {row['share']:.1%} of the step; "
                  f"usual loop {row['usual_img_per_s']:,.0f} img/s |")  # fmt: skip
    failed = [name for name, rc, _, _ in stages if rc != "0"]
    if failed:
        print(f"\ngpu_check: stages that did not pass: {', '.join(failed)} (their logs are in {results})")
    return 1 if failed else 0


def main() -> None:
    command, *paths = sys.argv[1:] or ["?"]
    if command == "env" and len(paths) == 2:
        raise SystemExit(environment(Path(paths[0]), Path(paths[1])))
    if command == "syncs" and len(paths) == 1:
        raise SystemExit(sync_count(Path(paths[0])))
    if command == "summary" and len(paths) == 1:
        raise SystemExit(summary(Path(paths[0])))
    raise SystemExit(__doc__.split("\n\n")[1])


if __name__ == "__main__":
    main()

"""1-process vs 2-process data parallelism on the CPU, and peak memory per configuration.

Every configuration is a real `kdforaa train` run in its own process(es) on the same Fashion-MNIST
subset for one epoch; img/s comes from its metrics.jsonl (training only), peak memory is each
process's maximum resident set size (for torchrun, the largest rank's).

    python benchmarks/bench_scaling.py [--limit 4096]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from kdforaa.config import build_config
from kdforaa.distill.cache import build_cache
from kdforaa.experiments.step_bench import random_teacher_checkpoint

# runs kdforaa's CLI, then prints the process's peak RSS (KiB on Linux)
_WRAPPER = (
    "import resource, sys; from kdforaa.cli import main; rc = main(sys.argv[1:]); "
    "print('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True); sys.exit(rc)"
)


def _run(out: Path, args: list[str], processes: int) -> tuple[float, float]:
    if processes == 1:
        cmd = [sys.executable, "-c", _WRAPPER, "train", *args, "--out", str(out), "--quiet"]
    else:
        wrapper = out.parent / f"{out.name}-wrapper.py"
        wrapper.write_text(_WRAPPER.replace("; ", "\n"))
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
            str(wrapper), "train", *args, "--out", str(out), "--quiet",
        ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, check=True)
    rss = max(int(line.split()[1]) for line in result.stdout.splitlines() if line.startswith("MAXRSS"))
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    return record["img_per_s"], rss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=4096)
    args = parser.parse_args()
    base = [f"data.limit={args.limit}", "data.test_limit=100", "model.name=resnet8", "train.epochs=1",
            "augment.policy=randaugment", "augment.magnitude=15"]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cfg = build_config({"data": {"limit": args.limit}, "model": {"name": "resnet8"},
                            "augment": {"policy": "randaugment", "magnitude": 15}})  # fmt: skip
        teacher = random_teacher_checkpoint("resnet20", cfg, tmp)
        distill = [f"teacher.checkpoint={teacher}", "distill.method=topk_kd", "distill.k=5"]
        kd_cfg = build_config({**cfg.model_dump(mode="json"), "teacher": {"checkpoint": teacher},
                               "distill": {"method": "topk_kd", "k": 5}})  # fmt: skip
        build_cache(kd_cfg, teacher, tmp / "cache", epochs=1, k=10, progress=False)
        configs = [
            ("CE, 1 process x 2 threads", base + ["train.threads=2"], 1),
            ("CE, 2 processes x 1 thread (torchrun, gloo)", base + ["train.threads=1"], 2),
            ("KDforAA online teacher, 1 process x 2 threads", base + distill + ["train.threads=2"], 1),
            ("KDforAA cached teacher, 1 process x 2 threads",
             base + distill + [f"teacher.cache={tmp / 'cache'}", "train.threads=2"], 1),
        ]  # fmt: skip
        print("| configuration | img/s | peak RSS per process (MiB) |\n|---|---|---|")
        for i, (name, cli_args, processes) in enumerate(configs):
            img_s, rss = _run(tmp / f"run{i}", cli_args, processes)
            print(f"| {name} | {img_s:.0f} | {rss:.0f} |")


if __name__ == "__main__":
    main()

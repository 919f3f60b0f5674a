"""Throughput of our batched per-sample augmentation: against Pillow and kornia, and backend by backend.

    python benchmarks/bench_augment.py [--device cpu|cuda] [--suite pillow|backends|plan] [--quick]
                                       [--threads 2]

Three suites, each timing its contenders side by side in one process, interleaved (each repeat times
every contender once, in turn):

- ``pillow`` (the default on the CPU): RandAugment(2, 9) of ours against the timm-style Pillow reference
  (``kdforaa.experiments.benchmarking.pillow_randaugment``: one image at a time, numpy <-> Pillow
  conversion included, same 14 ops and level table) and kornia's RandAugment when it is importable
  (kornia draws its ops once per batch, ours per sample), plus per-op throughput of our ops next to
  Pillow's, so slow ops show.
- ``backends`` (the default on CUDA): RandAugment(2, 9), AutoAugment (imagenet) and TrivialAugment on
  each backend that runs on the device (CUDA: triton and torch), with kernel launches and host syncs
  per batch (CUDA), next to kornia's RandAugment; 224x224 B=256 and 32x32 B=1024, judged against the
  GPU targets. On CUDA each timed call runs 10 batches back to back and then waits for the GPU, as a
  training loop does. ``--quick`` on the CPU shrinks it to tiny batches, so that
  ``TRITON_INTERPRET=1`` can run the Triton backend through its interpreter (a correctness run: its
  speed means nothing).
- ``plan`` (CPU only, no GPU needed): the host work per batch of the fused backends at B=256, 224x224 and
  32x32 (RandAugment(2, 9) after a padded crop and a flip): the Triton kernel's plan and record packing
  (a few numbers per sample; target <= 0.3 ms at 224x224 on a quiet host, and within 2x of that at
  32x32), next to the native kernels' plan, whose per-row and per-column warp parts grow with H+W.
  Sampling is not included. Median and minimum of many repeats (the minimum is the quiet figure).

Prints Markdown tables of median images/s. On a machine whose cores are busy with other jobs, torch's
two-thread parallel regions stall on the busy core: compare with ``--threads 1`` there.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from PIL import Image

from kdforaa.augment import AugParams, apply_params, native
from kdforaa.augment.apply import choose_backend
from kdforaa.augment.op_table import ARGUMENT_FREE_OPS, OP_NAMES, op_argument
from kdforaa.augment.pipeline import AugmentPipeline
from kdforaa.augment.plan import sample_plan
from kdforaa.augment.policies import AutoAugment, Policy, RandAugment, TrivialAugment
from kdforaa.augment.random import make_keys
from kdforaa.experiments.benchmarking.backends import backends_here, code_that_ran
from kdforaa.experiments.benchmarking.cuda_counts import cuda_counts
from kdforaa.experiments.benchmarking.pillow_randaugment import PILLOW_OPS, PillowRandAugment
from kdforaa.experiments.benchmarking.workload import MAGNITUDE, NUM_OPS, real_batch

KORNIA_MAGNITUDE = MAGNITUDE * 3  # kornia's magnitude runs 0..30 where ours runs 0..10


@dataclass(frozen=True)
class Case:
    side: int
    batch: int
    min_vs_pillow: float
    min_vs_kornia: float


CASES = (Case(32, 256, 8.0, 1.0), Case(224, 64, 1.5, 1.5))


@dataclass(frozen=True)
class GpuCase:
    """A ``backends`` case and the GPU targets of RandAugment(2, 9) on the Triton backend (None: none)."""

    side: int
    batch: int
    min_images_per_second: float | None
    min_vs_kornia: float | None


GPU_CASES = (GpuCase(224, 256, 150_000, 3.0), GpuCase(32, 1024, 1_000_000, None))
TINY_CASES = (GpuCase(32, 8, None, None), GpuCase(48, 4, None, None))  # --quick on the CPU: interpretable
BACKEND_POLICIES: dict[str, Callable[[], Policy]] = {
    "RandAugment(2, 9)": lambda: RandAugment(NUM_OPS, MAGNITUDE),
    "AutoAugment(imagenet)": lambda: AutoAugment("imagenet"),
    "TrivialAugment": lambda: TrivialAugment(),
}


# -------------------------------------------------------------------------------------------- timing
def images_per_second(
    runners: dict[str, Callable[[], object]], batch: int, repeats: int, device: torch.device
) -> dict[str, float]:
    """Median over ``repeats`` rounds (after one warm-up round) of ``batch / seconds`` for each runner.

    Each round times every runner once, one after the other, so a change in the machine's load (other
    jobs on shared cores) hits all of them alike and their ratios stay meaningful.
    """

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    seconds: dict[str, list[float]] = {name: [] for name in runners}
    for round_ in range(repeats + 1):
        for name, fn in runners.items():
            start = time.perf_counter()
            fn()
            sync()
            if round_:
                seconds[name].append(time.perf_counter() - start)
    return {name: batch / statistics.median(times) for name, times in seconds.items()}


def kornia_runner(x: torch.Tensor) -> Callable[[], torch.Tensor] | None:
    try:
        from kornia.augmentation.auto import RandAugment as KorniaRandAugment
    except ImportError:
        return None
    augment = KorniaRandAugment(n=NUM_OPS, m=KORNIA_MAGNITUDE).to(x.device)
    return lambda: augment(x.float().div(255)).mul(255).round().clamp(0, 255).to(torch.uint8)


def per_op_runners(x: torch.Tensor) -> dict[str, Callable[[], torch.Tensor]]:
    """Each op through the engine on the whole batch at level 9, signs alternating, plus the fused warp
    (rotate then shear_x in one resample)."""
    batch = x.shape[0]
    signs = torch.where(torch.arange(batch) % 2 == 0, 1, -1).to(torch.int8)

    def runner(*names: str) -> Callable[[], torch.Tensor]:
        ids = torch.tensor([[OP_NAMES.index(name) for name in names]] * batch)
        levels = torch.full(ids.shape, 0.0 if names[0] in ARGUMENT_FREE_OPS else MAGNITUDE)
        params = AugParams(
            ops=ids,
            levels=levels,
            signs=signs.view(-1, 1).expand(ids.shape).clone(),
            applied=torch.ones(ids.shape, dtype=torch.bool),
        )
        return lambda: apply_params(x, params)

    runners = {name: runner(name) for name in OP_NAMES}
    runners["warp (rotate+shear fused)"] = runner("rotate", "shear_x")
    return runners


def pillow_op_runners(x: torch.Tensor) -> dict[str, Callable[[], object]]:
    """Each op through Pillow image by image (already converted), same arguments as ours."""
    images = [Image.fromarray(a) for a in x.permute(0, 2, 3, 1).cpu().numpy()]
    height, width = x.shape[-2:]

    def runner(name: str) -> Callable[[], object]:
        signs = [1.0 if i % 2 == 0 else -1.0 for i in range(len(images))]
        args = [float(op_argument(name, MAGNITUDE, s, height=height, width=width)) for s in signs]
        return lambda: [PILLOW_OPS[name](img, arg) for img, arg in zip(images, args, strict=True)]

    return {name: runner(name) for name in OP_NAMES}


@dataclass
class Result:
    case: Case
    ours: float
    ours_torch: float
    pillow: float
    kornia: float
    ours_per_op: dict[str, float]
    pillow_per_op: dict[str, float]


def measure(case: Case, device: torch.device, repeats: int) -> Result:
    """Images/s of ours, Pillow and kornia (nan if absent), and of each op, for one case."""
    x = real_batch(case.side, case.batch, device)
    ours, generator = RandAugment(NUM_OPS, MAGNITUDE), torch.Generator().manual_seed(0)
    pillow, x_cpu = PillowRandAugment(NUM_OPS, MAGNITUDE), x.cpu()
    kornia = kornia_runner(x)

    policies = {"ours": lambda: ours(x, generator), "pillow": lambda: pillow(x_cpu)}
    if choose_backend("auto", x.device, "nearest") == "native":
        policies["ours, torch path"] = lambda: ours(x, generator, backend="torch")
    if kornia:
        policies["kornia"] = kornia
    rates = images_per_second(policies, case.batch, repeats, device)
    per_op = images_per_second(
        {("ours", name): run for name, run in per_op_runners(x).items()}
        | {("pillow", name): run for name, run in pillow_op_runners(x_cpu).items()},
        case.batch,
        repeats,
        device,
    )
    return Result(
        case,
        ours=rates["ours"],
        ours_torch=rates.get("ours, torch path", float("nan")),
        pillow=rates["pillow"],
        kornia=rates.get("kornia", float("nan")),
        ours_per_op={name: rate for (who, name), rate in per_op.items() if who == "ours"},
        pillow_per_op={name: rate for (who, name), rate in per_op.items() if who == "pillow"},
    )


def backend_suite(
    device: torch.device, cases: tuple[GpuCase, ...], repeats: int, calls: int
) -> list[dict[str, object]]:
    """The ``backends`` table: every policy on every backend here, kornia's RandAugment beside them;
    returns its rows. Each row says which code ran (a ``triton`` row that fell back says so)."""
    backends = backends_here(device)
    print(f"backends: {', '.join(backends)}; a timed call runs {calls} batch(es), then waits for the device")
    print("'same bytes': the contender's output for the same parameters equals the torch path's\n")
    header = (
        "| images | batch | policy | contender | img/s | launches per batch | syncs per batch | same bytes"
    )
    print(header + " | ran | target |\n" + "|---" * 10 + "|")
    rows: list[dict[str, object]] = []
    for case in cases:
        x = real_batch(case.side, case.batch, device)
        generator = torch.Generator().manual_seed(0)
        runners: dict[tuple[str, str], Callable[[], object]] = {}
        single: dict[tuple[str, str], Callable[[], object]] = {}
        for name, make in BACKEND_POLICIES.items():
            policy = make()
            for backend in backends:
                one = functools.partial(policy, x, generator, backend=backend)
                single[(name, backend)] = one
                runners[(name, backend)] = functools.partial(_repeat, one, calls)
        kornia = kornia_runner(x)
        if kornia is not None:
            single[("RandAugment(2, 9)", "kornia")] = kornia
            runners[("RandAugment(2, 9)", "kornia")] = functools.partial(_repeat, kornia, calls)
        same = {key: _same_bytes(x, BACKEND_POLICIES[key[0]](), key[1]) for key in single}
        rates = images_per_second(runners, case.batch * calls, repeats, device)
        kornia_rate = rates.get(("RandAugment(2, 9)", "kornia"), float("nan"))
        for (name, contender), rate in rates.items():
            launches = syncs = "—"
            if device.type == "cuda":
                measured = cuda_counts(single[(name, contender)])
                launches, syncs = f"{measured.launches:.0f}", f"{measured.syncs:.0f}"
            verdict = _verdict(case, name, contender, rate, kornia_rate, device)
            ran = code_that_ran(contender)
            label = f"{case.side}x{case.side} RGB | {case.batch} | {name} | {contender}"
            cells = f"{rate:,.0f} | {launches} | {syncs} | {same[(name, contender)]} | {ran} | {verdict}"
            print(f"| {label} | {cells} |")
            rows.append(
                {"images": f"{case.side}x{case.side}", "batch": case.batch, "policy": name,
                 "contender": contender, "ran": ran, "img_per_s": rate, "launches": launches,
                 "syncs": syncs, "same_bytes": same[(name, contender)], "verdict": verdict}
            )  # fmt: skip
    return rows


def refuse_fallbacks(rows: list[dict[str, object]]) -> None:
    """Exit with a message when a row ran other code than its contender (Triton's torch fallback): its
    figure must not pass for the contender's."""
    fell_back = sorted(
        {f"{row['contender']} ran {row['ran']}" for row in rows if row["ran"] != row["contender"]}
    )
    if fell_back:
        raise SystemExit(f"bench_augment: rows not measured on their own code: {'; '.join(fell_back)}")


def _same_bytes(x: torch.Tensor, policy: Policy, contender: str) -> str:
    """Whether ``contender`` gives the torch path's bytes for one draw of ``policy`` on ``x``."""
    if contender == "kornia":
        return "— (its own ops)"
    params = policy.sample(make_keys(0, 0, torch.arange(len(x))))
    differ = int(
        (policy.apply(x, params, backend=contender) != policy.apply(x, params, backend="torch")).sum()
    )
    return "yes" if differ == 0 else f"NO: {differ:,} values differ"


def _repeat(fn: Callable[[], object], calls: int) -> None:
    for _ in range(calls):
        fn()


def _verdict(
    case: GpuCase, policy: str, contender: str, rate: float, kornia: float, device: torch.device
) -> str:
    """The GPU targets of RandAugment(2, 9) on the Triton backend, judged on CUDA; "" elsewhere."""
    if policy != "RandAugment(2, 9)" or contender != "triton" or case.min_images_per_second is None:
        return ""
    wanted = f">= {case.min_images_per_second:,.0f} img/s"
    met = rate >= case.min_images_per_second
    if case.min_vs_kornia is not None:
        wanted += f", >= {case.min_vs_kornia:g}x kornia ({rate / kornia:.1f}x)"
        met = met and not rate / kornia < case.min_vs_kornia  # a missing kornia (nan) is not judged
    if device.type != "cuda":
        return f"— (GPU targets: {wanted})"
    return f"{'met' if met else 'MISSED'}: {wanted}"


PLAN_SIDES, PLAN_BATCH, PLAN_TARGET_MS = (224, 32), 256, 0.3


def plan_suite(repeats: int) -> None:
    """The ``plan`` table: host milliseconds per batch of each fused backend's plan, sides interleaved."""
    from kdforaa.augment import triton_kernels  # imports Triton (its record packing)

    params = {
        side: AugmentPipeline(
            RandAugment(NUM_OPS, MAGNITUDE), side, side, crop_padding=side // 8, flip=True
        ).sample(make_keys(0, 0, torch.arange(PLAN_BATCH)))
        for side in PLAN_SIDES
    }
    planners: dict[tuple[int, str], Callable[[], object]] = {}
    for side, p in params.items():
        planners[(side, "triton: plan + records")] = functools.partial(
            lambda p, side: triton_kernels._records(sample_plan(p, side, side), pinned=False), p, side
        )
        planners[(side, "native: plan")] = functools.partial(
            lambda p, side: native.native_warp(sample_plan(p, side, side), side, side), p, side
        )
    seconds: dict[tuple[int, str], list[float]] = {key: [] for key in planners}
    for round_ in range(repeats + 1):
        for key, fn in planners.items():
            start = time.perf_counter()
            fn()
            if round_:
                seconds[key].append(time.perf_counter() - start)
    print(f"host work per batch of {PLAN_BATCH}, RandAugment(2, 9) + padded crop + flip; {repeats} repeats\n")
    print("| images | plan | median ms | min ms | target |\n|---|---|---|---|---|")
    quiet = {side: min(seconds[(side, "triton: plan + records")]) * 1e3 for side in PLAN_SIDES}
    for (side, name), times in seconds.items():
        target = ""
        if name.startswith("triton") and side == PLAN_SIDES[0]:
            target = f"{'met' if quiet[side] <= PLAN_TARGET_MS else 'MISSED'}: <= {PLAN_TARGET_MS} ms (min)"
        elif name.startswith("triton"):
            ratio = quiet[side] / quiet[PLAN_SIDES[0]]
            verdict = "met" if ratio <= 2 else "MISSED"
            target = f"{verdict}: within 2x of {PLAN_SIDES[0]}x{PLAN_SIDES[0]} ({ratio:.2f}x)"
        median_ms, min_ms = statistics.median(times) * 1e3, min(times) * 1e3
        print(f"| {side}x{side} | {name} | {median_ms:.3f} | {min_ms:.3f} | {target} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument(
        "--suite", choices=("pillow", "backends", "plan"), help="default: pillow on cpu, else backends"
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer repeats (backends on the CPU: tiny batches)"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--json", help="backends: also write the rows to this JSON file")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    suite = args.suite or ("pillow" if device.type == "cpu" else "backends")
    repeats = 3 if args.quick else 7
    if suite == "backends" and device.type == "cpu" and args.quick:
        repeats = 1
    print(
        f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; median of {repeats} repeats"
    )
    if device.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(device)}")
    if suite == "plan":
        plan_suite(repeats=30 if args.quick else 300)
        return
    if suite == "backends":
        cases = TINY_CASES if device.type == "cpu" and args.quick else GPU_CASES
        rows = backend_suite(device, cases, repeats, calls=10 if device.type == "cuda" else 1)
        if args.json:
            with open(args.json, "w") as file:
                json.dump({"device": str(device), "rows": rows}, file, indent=1)
        refuse_fallbacks(rows)
        return
    print("Pillow runs on the CPU, one image at a time; kornia chooses its ops once per batch.\n")
    results = [measure(case, device, repeats) for case in CASES]
    print(
        "| images | batch | ours img/s | ours, torch path img/s | Pillow img/s | kornia img/s | ours/Pillow "
        "| ours/kornia | targets |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        vs_pillow, vs_kornia = r.ours / r.pillow, r.ours / r.kornia
        met = vs_pillow >= r.case.min_vs_pillow and not vs_kornia < r.case.min_vs_kornia
        verdict = "met" if met else "MISSED"
        target = f"{verdict}: >= {r.case.min_vs_pillow:g}x Pillow, >= {r.case.min_vs_kornia:g}x kornia"
        if device.type != "cpu":
            target = "— (the targets are for the CPU)"
        torch_path = "—" if math.isnan(r.ours_torch) else f"{r.ours_torch:,.0f}"
        rates = f"{r.ours:,.0f} | {torch_path} | {r.pillow:,.0f} | {r.kornia:,.0f} | {vs_pillow:.1f}x"
        rates += f" | {vs_kornia:.1f}x"
        print(f"| {r.case.side}x{r.case.side} RGB | {r.case.batch} | {rates} | {target} |")
    print(
        "\nEach op alone on the whole batch at level 9, img/s (Pillow: one image at a time, no conversion):\n"
    )
    sizes = [f"{r.case.side}x{r.case.side} B={r.case.batch}" for r in results]
    print("| op | " + " | ".join(f"ours {s} | Pillow {s} | ratio" for s in sizes) + " |")
    print("|---|" + "---|---|---|" * len(results))
    for name in results[0].ours_per_op:
        cells = []
        for r in results:
            ours_rate, pillow_rate = r.ours_per_op[name], r.pillow_per_op.get(name)
            pillow_cells = f"{pillow_rate:,.0f} | {ours_rate / pillow_rate:.1f}x" if pillow_rate else "— | —"
            cells.append(f"{ours_rate:,.0f} | {pillow_cells}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

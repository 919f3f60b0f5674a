"""The ``kdforaa sweep`` command: plan, train what is missing, report; and ``--report-only``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from kdforaa import atomic
from kdforaa.analysis.report import check_plotting
from kdforaa.config import read_yaml_file
from kdforaa.errors import BadInput
from kdforaa.experiments.sweep.plan import Run, conflict, folder_state, plan, reuse_finished
from kdforaa.experiments.sweep.results import write_report
from kdforaa.experiments.sweep.scheduler import Scheduler, TrainFn
from kdforaa.experiments.sweep.spec import load_sweep, parse_sweep
from kdforaa.text import count

SAVED_SPEC = "sweep.yaml"  # the resolved sweep, written into the output folder for --report-only

# This package is the `kdforaa sweep` command (cli.py only hands it the flags), so its messages name the
# command's flags (--out, --jobs, --reuse-from). This module prints the plan and the report; plan and
# results print nothing; the scheduler prints a line per run started and finished (the progress).


def _describe_plan(teachers: list[Run], runs: list[Run]) -> None:
    for kind, group in (("teacher", teachers), ("run", runs)):
        for run in group:
            why = conflict(run)
            state = "CONFLICT: " + why if why else folder_state(run.folder)
            print(f"{kind:7} {run.name:40} {state}")


def _describe_dry_run(teachers: list[Run], runs: list[Run], out: Path) -> None:
    """``--dry-run``: every planned run and its state, then how many are left to train."""
    _describe_plan(teachers, runs)
    todo = sum(folder_state(r.folder) != "finished" for r in (*teachers, *runs))
    print(
        f"dry run: {count(len(runs), 'run')} + {count(len(teachers), 'teacher run')} planned under "
        f"{out.resolve()}, {todo} to train"
    )


def run_sweep(
    path: str | Path,
    out: str | Path,
    *,
    jobs: int = 1,
    dry_run: bool = False,
    train_fn: TrainFn | None = None,
    reuse_from: Sequence[str | Path] = (),
) -> int:
    """The ``kdforaa sweep SWEEP.yaml --out DIR`` command; returns the exit code (1 if a run failed).

    ``reuse_from``: folders searched for finished runs with the same config (see :func:`reuse_finished`).

    ``train_fn(tree, folder)`` trains one run in its child process (default: the demo's
    train_or_reuse); it must be a module-level function so that "spawn" children can import it.
    """
    if jobs < 1:
        raise BadInput(f"--jobs must be at least 1, got {jobs}")
    sweep = load_sweep(path)
    out = Path(out)
    teachers, runs = plan(sweep, out)
    if not runs:
        raise BadInput("the sweep has no runs: give grid: values or seeds:")
    needed = [t for t in teachers if any(r.teacher == t.name for r in runs)]
    if dry_run:
        _describe_dry_run(needed, runs, out)
        return 0
    if sweep.plots:  # before the runs train, not after
        check_plotting(f"the plots of sweep {path} (plot: [] turns them off)")
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out / SAVED_SPEC, yaml.safe_dump(sweep.spec, sort_keys=False))
    for run, source in reuse_finished([*needed, *runs], [Path(p) for p in reuse_from]):
        print(f"{run.name}: the same run is finished in {source}; copied")
    print(
        f"sweep: {count(len(runs), 'run')} + {count(len(needed), 'teacher run')}, {jobs} at a time; "
        "each run uses every CPU core (unless its config sets train.threads), as it would alone: the same "
        "bits"
    )
    outcomes = Scheduler(jobs, train_fn, len(needed) + len(runs)).run_all(
        [*needed, *runs], {t.name: t for t in teachers}
    )
    files = write_report(sweep, needed, runs, out, outcomes)
    failed = [r for r in (*needed, *runs) if outcomes[r.folder.as_posix()].status == "failed"]
    if failed:
        print(f"{len(failed)} of {len(needed) + len(runs)} runs failed: {', '.join(r.name for r in failed)}")
    print(f"sweep results: {files['markdown'].resolve()} (table), {files['results'].resolve()} (all runs)")
    return 1 if failed else 0


def report_only(out: str | Path) -> dict[str, Path]:
    """The ``kdforaa sweep --report-only DIR`` command: tables and plots again from finished runs."""
    out = Path(out)
    saved = out / SAVED_SPEC
    if not saved.is_file():
        raise BadInput(f"{out} holds no sweep ({SAVED_SPEC} is missing): pass the --out folder of a sweep")
    sweep = parse_sweep(read_yaml_file(saved, "saved sweep") or {})
    if sweep.plots:
        check_plotting(f"the plots of sweep {saved} (plot: [] turns them off)")
    teachers, runs = plan(sweep, out)
    needed = [t for t in teachers if any(r.teacher == t.name for r in runs)]
    files = write_report(sweep, needed, runs, out)
    finished = sum(folder_state(r.folder) == "finished" for r in runs)
    print(f"{finished} of {count(len(runs), 'run')} finished")
    print(f"sweep results: {files['markdown'].resolve()} (table), {files['results'].resolve()} (all runs)")
    return files

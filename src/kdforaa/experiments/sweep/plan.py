"""Planning a sweep: the run folders, their configs and teachers; what is finished, resumable or in conflict.

Every grid point and seed is one run in its own folder under the output folder; runs with the same
resolved config can be copied from other sweeps instead of trained again (``--reuse-from``). Runs that
leave ``train.threads`` at 0 each use every usable core, as the same run outside a sweep does, so a job's
bits do not depend on ``--jobs`` or on what runs beside it (:mod:`kdforaa.train.threads`).
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kdforaa import progress
from kdforaa.config import DistillConfig, build_config, config_to_dict, merge_trees
from kdforaa.errors import BadInput
from kdforaa.experiments.sweep.spec import TEACHER_KEY, Sweep, get_dotted
from kdforaa.limits import MAX_SWEEP_RUNS
from kdforaa.train.run_folder import SUMMARY, RunFolder

UNSAFE = re.compile(r"[^A-Za-z0-9._+=-]+")
PLANNING_BAR_RUNS = 1000  # a bar (on a terminal) while planning a sweep of at least this many runs


@dataclass(frozen=True)
class Run:
    """One training run of the sweep: where it lives and the config it trains."""

    name: str
    folder: Path
    tree: dict[str, Any]
    labels: dict[str, str] = field(default_factory=dict)  # grid key -> label
    values: dict[str, Any] = field(default_factory=dict)  # grid key -> raw value
    seed: int = 0
    teacher: str | None = None  # the teacher run it needs first


def safe_name(text: str) -> str:
    """Filesystem-safe: anything but letters, digits and ``. _ + = -`` becomes ``-``, and no name
    starts or ends with a dot (``..`` and ``.`` would name the folder above ``--out``, or ``--out``)."""
    return UNSAFE.sub("-", text).strip("-.") or "run"


def run_folder(out: Path, name: str) -> Path:
    """The folder of run ``name``: always a direct sub-folder of ``out``, whatever the name holds."""
    folder = (out / name).resolve()
    if folder.parent != out.resolve() or not name:
        raise BadInput(f"run name {name!r} would not be a folder directly under {out}: rename it")
    return folder


def check_size(sweep: Sweep) -> int:
    """The sweep's run count (grid points x seeds), refused above :data:`~kdforaa.limits.MAX_SWEEP_RUNS`
    before any of them is planned."""
    total = len(sweep.seeds or [0])
    for choices in sweep.grid.values():
        total *= len(choices)
        if total > MAX_SWEEP_RUNS:
            sizes = " x ".join(str(len(c)) for c in sweep.grid.values())
            raise BadInput(
                f"the sweep's grid ({sizes} values x {len(sweep.seeds or [0])} seeds) has more than "
                f"{MAX_SWEEP_RUNS:,} runs: split it into several sweeps"
            )
    return total


def _short_keys(keys: Sequence[str]) -> dict[str, str]:
    """Each dotted key's last part, unless two keys share it (then the whole key)."""
    last = [k.split(".")[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last, strict=True)}


def run_name(scheme: str | None, keys: Sequence[str], labels: dict[str, str]) -> str:
    """The run folder name from the grid labels (and ``seed``): the scheme, or ``key-value_..._seed-S``."""
    if scheme is not None:
        return safe_name(re.sub(r"\{([^{}]*)\}", lambda m: labels[m.group(1)], scheme))
    short = _short_keys(keys)
    return safe_name("_".join([*(f"{short[k]}-{labels[k]}" for k in keys), f"seed-{labels['seed']}"]))


def plan(sweep: Sweep, out: Path) -> tuple[list[Run], list[Run]]:
    """The teacher runs and the student runs of ``sweep`` under ``out``, each config validated."""
    teachers = {
        name: Run(name, (out / t["folder"]).resolve(), t["tree"], teacher=None)
        for name, t in sweep.teachers.items()
    }
    for run in teachers.values():
        _validated(run.tree, f"teacher {run.name!r}")
    keys = list(sweep.grid)
    seeds = sweep.seeds or [int(sweep.base.get("seed", 0))]
    runs: dict[str, Run] = {}
    total = check_size(sweep)
    bar = progress.bar(total, "planning the sweep", enabled=total >= PLANNING_BAR_RUNS, leave=False)
    for combo in itertools.product(*(sweep.grid[k] for k in keys)):
        for seed in seeds:
            bar.update(1)
            tree = sweep.base
            for choice in combo:
                tree = merge_trees(tree, choice.patch)
            tree = merge_trees(tree, {"seed": seed})
            labels = {c.key: c.label for c in combo}
            values = {c.key: c.value for c in combo}
            labels["seed"], values["seed"] = str(seed), seed
            distils = _distils(tree)
            teacher = _teacher_of(distils, labels.get(TEACHER_KEY), list(teachers))
            if teachers:
                if TEACHER_KEY in labels and teacher is None:  # the choice does not matter to this run
                    labels[TEACHER_KEY] = values[TEACHER_KEY] = "none"
                checkpoint = str(teachers[teacher].folder / "best.pt") if teacher else None
                tree = merge_trees(tree, {"teacher": {"checkpoint": checkpoint}})
            name = run_name(sweep.name, keys, labels)
            if distils and not get_dotted(tree, "teacher.checkpoint"):
                raise BadInput(
                    f"run {name} distils (a distill.method or a feature term) but has no teacher: "
                    "add teacher: to the sweep file or set teacher.checkpoint in its base"
                )
            _validated(tree, "run " + " ".join(f"{k}={v}" for k, v in labels.items()))
            run = Run(name, run_folder(out, name), tree, labels, values, seed, teacher)
            if name in runs and runs[name].tree != tree:
                raise BadInput(
                    f"two different runs get the folder name {name!r}: make the sweep's name: unique"
                )
            if any(t.folder.is_relative_to(run.folder) for t in teachers.values()):
                raise BadInput(
                    f"run folder {run.folder} would hold a teacher's folder: change the sweep's name:"
                )
            runs.setdefault(name, run)
    bar.close()
    return list(teachers.values()), list(runs.values())


def _distils(tree: dict[str, Any]) -> bool:
    """Whether the run's ``distill:`` section has a term that needs a teacher (False if it is malformed:
    validating the whole config then names what is wrong)."""
    try:
        return DistillConfig.model_validate(tree.get("distill") or {}).needs_teacher
    except ValidationError:
        return False


def _teacher_of(distils: bool, chosen: str | None, teachers: list[str]) -> str | None:
    """The sweep teacher a run needs (None when it does not distil: no logit or feature term)."""
    if not teachers or not distils:
        return None
    if chosen is not None:
        return chosen
    if len(teachers) > 1:
        raise BadInput(f"the sweep has teachers {', '.join(teachers)}: add a grid key teacher: [names]")
    return teachers[0]


def _validated(tree: dict[str, Any], what: str) -> None:
    try:
        build_config(tree)
    except BadInput as err:
        raise BadInput(f"sweep {what}: {err}") from None


def folder_state(folder: Path) -> str:
    """``finished`` (summary.json), ``resumable`` (a checkpoint), ``started`` (config only) or ``new``."""
    run = RunFolder(folder)
    if run.file(SUMMARY).exists():
        return "finished"
    if run.can_resume():
        return "resumable"
    return "started" if run.has_run() else "new"


def _comparable(tree: dict[str, Any]) -> dict[str, Any]:
    """A resolved config without the keys that may differ between sweeps of the same runs."""
    resolved = config_to_dict(build_config(tree))
    resolved["train"].pop("threads", None)
    return resolved


def _first_difference(a: Any, b: Any, prefix: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            diff = _first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
            if diff:
                return diff
        return None
    return None if a == b else f"{prefix.rstrip('.')}: {a!r} there, {b!r} in the sweep"


def conflict(run: Run) -> str | None:
    """Why the run's folder cannot be reused for this run (its config differs), or None."""
    if folder_state(run.folder) not in ("finished", "resumable"):
        return None
    saved = RunFolder(run.folder).read_config()
    diff = _first_difference(_comparable(saved), _comparable(run.tree))
    if diff is None:
        return None
    return f"{run.folder} holds a run with another config ({diff}): delete it or choose another --out"


def _config_key(tree: dict[str, Any]) -> str:
    return json.dumps(_comparable(tree), sort_keys=True)


def reuse_finished(runs: Sequence[Run], sources: Sequence[Path]) -> list[tuple[Run, Path]]:
    """Copy into each new run's folder a finished run under ``sources`` that has the same config;
    returns each run copied with the folder it came from.

    Sweeps of one study share runs (the CE baseline at level 15 appears in several); copying the
    finished folder instead of training it again gives the same weights and numbers.
    """
    finished: dict[str, Path] = {}
    for source in sources:
        if not Path(source).is_dir():
            raise BadInput(f"--reuse-from {source}: no such folder")
        for summary in sorted(Path(source).rglob(SUMMARY)):
            try:
                key = _config_key(RunFolder(summary.parent).read_config())
            except (BadInput, OSError, ValueError):
                continue  # not a run folder this version can read: never reused
            finished.setdefault(key, summary.parent)
    copied = []
    for run in runs:
        match = finished.get(_config_key(run.tree)) if folder_state(run.folder) == "new" else None
        if match is not None and match.resolve() != run.folder.resolve():
            run.folder.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(run.folder, ignore_errors=True)
            shutil.copytree(match, run.folder, ignore=shutil.ignore_patterns(".lock", "train.log"))
            copied.append((run, match))
    return copied


def read_summary(folder: Path) -> dict[str, Any] | None:
    path = RunFolder(folder).file(SUMMARY)
    return json.loads(path.read_text()) if path.exists() else None

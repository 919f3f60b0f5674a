"""``kdforaa sweep``: a grid of training runs from one YAML file, run in parallel, resumable, summarised.

A sweep file::

    base: {from: common/student.yaml, train: {epochs: 10}}   # or just a config file path
    grid:                                  # full product of every key's values
      augment.magnitude: [0, 5, 10]        # dotted config key -> list of values
      distill:                             # or a section -> {label: settings merged into it}
        none: {method: none}
        kd: {method: kd, temperature: 4.0}
    seeds: [0, 1, 2]                       # optional; default: the base config's seed
    name: "{distill}-m{augment.magnitude}-s{seed}"   # optional run-folder naming scheme
    teacher: {from: ../fashion_mnist/teacher.yaml}   # optional: trained first, once
    plot: {x: augment.magnitude, hue: distill}       # optional (list allowed); y: final/best_test_acc

``from:`` paths are relative to the sweep file. Several teachers: ``teachers: {name: tree, ...}`` and a
grid key ``teacher: [name, ...]``; a teacher tree may say ``folder:`` (relative to the sweep's output
folder, default ``teachers/<name>``) so that sweeps share a teacher. When a sweep has teachers it owns
``teacher.checkpoint``: a run that distils (``distill.method != none``, or SP, hints or KR) gets its
teacher's ``best.pt``, any other run none (so runs that differ only in the teacher they do not use
are one run).

Every run is its own folder under the output folder, trained in a fresh process (multiprocessing
"spawn", one per run, at most ``--jobs`` at once) by the demo's train-or-reuse logic: a finished run
(summary.json) is skipped, a killed one (last.pt) resumed. Each run's output goes to its ``train.log``;
``train.threads`` defaults to cores // jobs so that the jobs do not oversubscribe the CPU. A failed run
is reported and the others go on. At the end: results.csv (one row per run), summary.csv and
summary.md (mean ± std over seeds per grid point: accuracies, time per epoch, inference img/s of the
trained model) and accuracy plots.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import re
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

import yaml

from kdforaa.analysis import report
from kdforaa.errors import BadInput, Stopped
from kdforaa.train.config import merge_trees, read_yaml_file
from kdforaa.train.run_folder import SUMMARY, RunFolder

SWEEP_KEYS = ("base", "grid", "seeds", "name", "teacher", "teachers", "plot")
PLOT_KEYS = ("x", "hue", "y")
ACCURACIES = ("final_test_acc", "best_test_acc")
RUN_NUMBERS = ("wall_time_s", "epochs", "params", "inference_img_per_s")  # copied from summary.json
STATISTICS = (*ACCURACIES, "wall_time_s", "epoch_s", "inference_img_per_s")  # mean / std over seeds
TEACHER_KEY = "teacher"  # grid key choosing among the sweep's teachers by name
SAVED_SPEC = "sweep.yaml"  # the resolved sweep, written into the output folder for --report-only
LOG = "train.log"
UNSAFE = re.compile(r"[^A-Za-z0-9._+=-]+")

TrainFn = Callable[[dict[str, Any], Path], Any]


# ------------------------------------------------------------------------------------ sweep files
@dataclass(frozen=True)
class Choice:
    """One value of one grid key: its label (for names and tables) and the config patch it applies."""

    key: str
    label: str
    value: Any  # the raw value (numbers stay numbers, for plotting); a mapping choice's label
    patch: dict[str, Any]


@dataclass(frozen=True)
class Sweep:
    """A validated sweep file with every ``from:`` resolved (``spec`` is what gets saved)."""

    spec: dict[str, Any]
    base: dict[str, Any]
    grid: dict[str, list[Choice]]
    seeds: list[int] | None
    name: str | None
    teachers: dict[str, dict[str, Any]]  # name -> {"tree": config tree, "folder": relative path}
    plots: list[dict[str, Any]]


def _nested(dotted: str, value: Any) -> dict[str, Any]:
    """``("a.b", 1)`` -> ``{"a": {"b": 1}}``."""
    for part in reversed(dotted.split(".")):
        value = {part: value}
    return value


def _get(tree: dict[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def _config_tree(entry: Any, folder: Path, where: str, extra: Sequence[str] = ()) -> dict[str, Any]:
    """A config tree from a file path or a mapping with an optional ``from:`` file under it.

    Keys in ``extra`` (e.g. a teacher's ``folder``) are kept as they are for the caller.
    """
    if isinstance(entry, str):
        entry = {"from": entry}
    if not isinstance(entry, dict):
        raise BadInput(f"sweep {where}: give a config file path or a mapping of config sections")
    tree = {k: v for k, v in entry.items() if k != "from"}
    source = entry.get("from")
    if source is None:
        return tree
    path = Path(source).expanduser()
    path = path if path.is_absolute() else folder / path
    loaded = read_yaml_file(path, f"config for sweep {where}") or {}
    if not isinstance(loaded, dict):
        raise BadInput(f"config {path} (sweep {where}) must be a mapping of sections (data:, model:, ...)")
    inner = {k: tree.pop(k) for k in extra if k in tree}
    return {**merge_trees(loaded, tree), **inner}


def resolve_files(raw: Any, folder: Path) -> dict[str, Any]:
    """The sweep file's mapping with every ``from:`` replaced by the file's contents (saved as is)."""
    if not isinstance(raw, dict):
        raise BadInput("a sweep file must be a mapping with base:, grid:, and optionally seeds:, name:, ...")
    unknown = sorted(set(raw) - set(SWEEP_KEYS))
    if unknown:
        raise BadInput(f"unknown sweep key {unknown[0]!r}: a sweep file may have {', '.join(SWEEP_KEYS)}")
    if "teacher" in raw and "teachers" in raw:
        raise BadInput("a sweep file has either teacher: (one) or teachers: (several by name), not both")
    spec = dict(raw)
    spec["base"] = _config_tree(raw.get("base", {}), folder, "base")
    if "teacher" in raw:
        spec["teachers"] = {TEACHER_KEY: raw["teacher"]}
        del spec["teacher"]
    teachers = spec.get("teachers", {})
    if not isinstance(teachers, dict):
        raise BadInput("sweep teachers: must map teacher names to config trees")
    spec["teachers"] = {
        str(name): _config_tree(tree, folder, f"teacher {name!r}", extra=("folder",))
        for name, tree in teachers.items()
    }
    return spec


def value_label(value: Any) -> str:
    """A grid value as text: ``15`` -> "15", ``0.5`` -> "0.5", ``None`` -> "none", ``[1, 2]`` -> "1-2"."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return "-".join(value_label(v) for v in value)
    return str(value)


def _choices(key: str, values: Any, teachers: dict[str, Any]) -> list[Choice]:
    if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
        raise BadInput(f"grid key {key!r} must be a dotted config key such as augment.magnitude")
    if isinstance(values, dict) and key == TEACHER_KEY:
        raise BadInput(
            "grid key teacher chooses among the sweep's teachers: give a list of their names "
            "(set teacher options with dotted keys such as teacher.input)"
        )
    if isinstance(values, dict):
        if not values:
            raise BadInput(f"grid key {key!r} has no choices")
        out = []
        for label, patch in values.items():
            if not isinstance(patch, dict):
                raise BadInput(f"grid {key}.{label}: a named choice must be a mapping of {key} settings")
            out.append(Choice(key, str(label), str(label), _nested(key, patch)))
        return out
    if not isinstance(values, list) or not values:
        raise BadInput(
            f"grid key {key!r} must have a non-empty list of values (or a mapping of named choices)"
        )
    if any(isinstance(v, dict) for v in values):
        raise BadInput(
            f"grid key {key!r}: list values must be plain values; name mappings as {{label: {{...}}}}"
        )
    if key == TEACHER_KEY:
        missing = [v for v in values if str(v) not in teachers]
        if missing:
            raise BadInput(
                f"grid teacher {missing[0]!r} is not one of the sweep's teachers: {', '.join(teachers)}"
            )
        return [Choice(key, str(v), str(v), {}) for v in values]
    return [Choice(key, value_label(v), v, _nested(key, v)) for v in values]


def _plots(raw: Any, grid: dict[str, list[Choice]]) -> list[dict[str, Any]]:
    """Validated plot specs ``{x, hue (list), y}``; by default one per numeric grid key.

    A numeric ``x`` gives lines with error bars, any other grouped bars.
    """
    if raw is None:
        return [
            {"x": key, "hue": [], "y": ACCURACIES[0]}
            for key in grid
            if _numeric(grid[key]) and len(grid[key]) > 1
        ]
    specs = raw if isinstance(raw, list) else [raw]
    out = []
    for spec in specs:
        if not isinstance(spec, dict) or "x" not in spec or set(spec) - set(PLOT_KEYS):
            raise BadInput(
                "sweep plot: must be {x: GRID_KEY, hue: GRID_KEY or list, y: final_test_acc|best_test_acc}"
            )
        hue = spec.get("hue") or []
        hue = [hue] if isinstance(hue, str) else list(hue)
        for key in [spec["x"], *hue]:
            if key not in grid:
                raise BadInput(
                    f"sweep plot: {key!r} is not a grid key ({', '.join(grid) or 'the grid is empty'})"
                )
        y = spec.get("y", ACCURACIES[0])
        if y not in ACCURACIES:
            raise BadInput(f"sweep plot: y={y!r} must be one of {', '.join(ACCURACIES)}")
        out.append({"x": spec["x"], "hue": hue, "y": y})
    return out


def _numeric(choices: list[Choice]) -> bool:
    return all(isinstance(c.value, int | float) and not isinstance(c.value, bool) for c in choices)


def parse_sweep(spec: dict[str, Any]) -> Sweep:
    """Validate a resolved sweep mapping (see :func:`resolve_files`)."""
    teachers = {}
    for name, tree in spec.get("teachers", {}).items():
        folder = tree.get("folder", f"teachers/{name}")
        teachers[name] = {"tree": {k: v for k, v in tree.items() if k != "folder"}, "folder": str(folder)}
    grid_raw = spec.get("grid") or {}
    if not isinstance(grid_raw, dict):
        raise BadInput("sweep grid: must map dotted config keys to lists of values")
    grid = {key: _choices(key, values, teachers) for key, values in grid_raw.items()}
    seeds = spec.get("seeds")
    if seeds is not None and (
        not isinstance(seeds, list)
        or not seeds
        or any(not isinstance(s, int) or isinstance(s, bool) for s in seeds)
    ):
        raise BadInput(f"sweep seeds: must be a non-empty list of integers, got {seeds!r}")
    if seeds is not None and len(set(seeds)) != len(seeds):
        raise BadInput(f"sweep seeds: {seeds!r} repeats a seed")
    name = spec.get("name")
    if name is not None:
        if not isinstance(name, str):
            raise BadInput(
                "sweep name: must be a string such as '{distill.method}-m{augment.magnitude}-s{seed}'"
            )
        unknown = [p for p in re.findall(r"\{([^{}]*)\}", name) if p not in grid and p != "seed"]
        if unknown:
            raise BadInput(f"sweep name: {{{unknown[0]}}} is not a grid key or {{seed}}")
    return Sweep(spec, spec.get("base", {}), grid, seeds, name, teachers, _plots(spec.get("plot"), grid))


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file (``from:`` paths are relative to it)."""
    path = Path(path)
    return parse_sweep(resolve_files(read_yaml_file(path, "sweep file"), path.parent))


# --------------------------------------------------------------------------------------- planning
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
    """Filesystem-safe: anything but letters, digits and ``. _ + = -`` becomes ``-``."""
    return UNSAFE.sub("-", text).strip("-") or "run"


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


def default_threads(jobs: int) -> int:
    """CPU threads per run so that ``jobs`` runs at once use at most every core once."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // max(1, jobs))


def _with_threads(tree: dict[str, Any], threads: int | None) -> dict[str, Any]:
    if threads is None or _get(tree, "train.threads"):
        return tree
    return merge_trees(tree, {"train": {"threads": threads}})


def plan(sweep: Sweep, out: Path, threads: int | None = None) -> tuple[list[Run], list[Run]]:
    """The teacher runs and the student runs of ``sweep`` under ``out``, each config validated.

    ``threads`` sets ``train.threads`` where the sweep leaves it at 0.
    """
    from kdforaa.train.config import build_config

    teachers = {
        name: Run(name, (out / t["folder"]).resolve(), _with_threads(t["tree"], threads), teacher=None)
        for name, t in sweep.teachers.items()
    }
    for run in teachers.values():
        _validated(build_config, run.tree, f"teacher {run.name!r}")
    keys = list(sweep.grid)
    seeds = sweep.seeds or [int(sweep.base.get("seed", 0))]
    runs: dict[str, Run] = {}
    for combo in itertools.product(*(sweep.grid[k] for k in keys)):
        for seed in seeds:
            tree = sweep.base
            for choice in combo:
                tree = merge_trees(tree, choice.patch)
            tree = _with_threads(merge_trees(tree, {"seed": seed}), threads)
            labels = {c.key: c.label for c in combo}
            values = {c.key: c.value for c in combo}
            labels["seed"], values["seed"] = str(seed), seed
            cfg = _validated(build_config, tree, "run " + " ".join(f"{k}={v}" for k, v in labels.items()))
            teacher = _teacher_of(cfg.distill.needs_teacher, labels.get(TEACHER_KEY), list(teachers))
            if teachers:
                if TEACHER_KEY in labels and teacher is None:  # the choice does not matter to this run
                    labels[TEACHER_KEY] = values[TEACHER_KEY] = "none"
                checkpoint = str(teachers[teacher].folder / "best.pt") if teacher else None
                tree = merge_trees(tree, {"teacher": {"checkpoint": checkpoint}})
            name = run_name(sweep.name, keys, labels)
            if cfg.distill.needs_teacher and not (_get(tree, "teacher.checkpoint") or cfg.teacher.cache):
                raise BadInput(
                    f"run {name} distils (distill.method={cfg.distill.method} or a feature term) but has "
                    "no teacher: add teacher: to the sweep file or set teacher.checkpoint in its base"
                )
            run = Run(name, (out / name).resolve(), tree, labels, values, seed, teacher)
            if name in runs and runs[name].tree != tree:
                raise BadInput(
                    f"two different runs get the folder name {name!r}: make the sweep's name: unique"
                )
            if any(t.folder.is_relative_to(run.folder) for t in teachers.values()):
                raise BadInput(
                    f"run folder {run.folder} would hold a teacher's folder: change the sweep's name:"
                )
            runs.setdefault(name, run)
    return list(teachers.values()), list(runs.values())


def _teacher_of(distils: bool, chosen: str | None, teachers: list[str]) -> str | None:
    """The sweep teacher a run needs (None when it does not distil: no logit or feature term)."""
    if not teachers or not distils:
        return None
    if chosen is not None:
        return chosen
    if len(teachers) > 1:
        raise BadInput(f"the sweep has teachers {', '.join(teachers)}: add a grid key teacher: [names]")
    return teachers[0]


def _validated(build_config: Callable[[dict[str, Any]], Any], tree: dict[str, Any], what: str) -> Any:
    try:
        return build_config(tree)
    except BadInput as err:
        raise BadInput(f"sweep {what}: {err}") from None


# ------------------------------------------------------------------------------------ run folders
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
    from kdforaa.train.config import build_config, config_to_dict

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


def reuse_finished(runs: Sequence[Run], sources: Sequence[Path]) -> None:
    """Copy into each new run's folder a finished run under ``sources`` that has the same config.

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
    for run in runs:
        match = finished.get(_config_key(run.tree)) if folder_state(run.folder) == "new" else None
        if match is not None and match.resolve() != run.folder.resolve():
            run.folder.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(run.folder, ignore_errors=True)
            shutil.copytree(match, run.folder, ignore=shutil.ignore_patterns(".lock", "train.log"))
            print(f"{run.name}: the same run is finished in {match}; copied")


def read_summary(folder: Path) -> dict[str, Any] | None:
    path = RunFolder(folder).file(SUMMARY)
    return json.loads(path.read_text()) if path.exists() else None


# -------------------------------------------------------------------------------------- execution
@dataclass
class Outcome:
    """How one run ended in this sweep."""

    status: str  # finished | reused | failed
    message: str = ""
    seconds: float = 0.0


def _train_in_child(tree: dict[str, Any], folder: str, train_fn: TrainFn | None) -> None:
    """Process entry point: output to the run's train.log, exit 0 / 2 (bad input) / 1 / 128+signal."""
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    log = (path / LOG).open("a")
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    if train_fn is None:
        from kdforaa.train.runner import train_or_reuse as train_fn
    try:
        train_fn(tree, path)
    except BadInput as err:
        print(f"kdforaa: error: {str(err).splitlines()[0]}", flush=True)
        sys.exit(2)
    except Stopped as err:
        print(f"kdforaa: {err}", flush=True)
        sys.exit(128 + err.signum)
    except Exception:
        traceback.print_exc()
        sys.stdout.flush()
        sys.exit(1)


def _last_line(log: Path) -> str:
    """The last thing a run printed (progress-bar carriage returns resolved)."""
    try:
        lines = [line.split("\r")[-1].strip() for line in log.read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    return next((line for line in reversed(lines) if line), "")


class _Scheduler:
    """Runs at most ``jobs`` child processes at once; a run starts once its teacher has finished."""

    def __init__(self, jobs: int, train_fn: TrainFn | None, total: int) -> None:
        self.jobs, self.train_fn, self.total = jobs, train_fn, total
        self.context = multiprocessing.get_context("spawn")
        self.outcomes: dict[str, Outcome] = {}
        self.running: dict[int, tuple[Run, Any, float]] = {}
        self.done = 0

    def _report(self, run: Run, outcome: Outcome) -> None:
        self.outcomes[run.folder.as_posix()] = outcome
        self.done += 1
        where = f"[{self.done}/{self.total}]"
        if outcome.status == "failed":
            print(f"{where} FAILED {run.name}: {outcome.message}", flush=True)
            return
        summary = read_summary(run.folder) or {}
        acc = summary.get("final_test_acc")
        text = f"final test accuracy {acc:.2f}%" if isinstance(acc, int | float) else "finished"
        verb = "reused" if outcome.status == "reused" else f"done in {outcome.seconds:.0f} s"
        print(f"{where} {run.name}: {text} ({verb})", flush=True)

    def _start(self, run: Run) -> None:
        process = self.context.Process(
            target=_train_in_child,
            args=(run.tree, str(run.folder), self.train_fn),
            name=f"kdforaa-{run.name}",
        )
        process.start()
        self.running[process.sentinel] = (run, process, time.perf_counter())
        print(f"training {run.name} (log: {run.folder / LOG})", flush=True)

    def _finish(self, sentinel: int) -> None:
        run, process, started = self.running.pop(sentinel)
        process.join()
        seconds = time.perf_counter() - started
        if process.exitcode == 0 and read_summary(run.folder) is not None:
            self._report(run, Outcome("finished", seconds=seconds))
        else:
            reason = _last_line(run.folder / LOG) or "no output"
            message = f"exit {process.exitcode}: {reason} (log: {run.folder / LOG})"
            self._report(run, Outcome("failed", message, seconds))

    def run_all(self, runs: Sequence[Run], teachers: dict[str, Run]) -> dict[str, Outcome]:
        """Train every run (teachers first where needed); returns folder -> outcome."""
        pending = list(runs)
        try:
            while pending or self.running:
                for run in list(pending):
                    if len(self.running) >= self.jobs:
                        break
                    needed = teachers.get(run.teacher) if run.teacher else None
                    state = self.outcomes.get(needed.folder.as_posix()) if needed else None
                    if needed is not None and state is None:
                        continue  # its teacher has not finished yet
                    pending.remove(run)
                    if state is not None and state.status == "failed":
                        self._report(run, Outcome("failed", f"its teacher {run.teacher!r} failed"))
                    elif (why := conflict(run)) is not None:
                        self._report(run, Outcome("failed", why))
                    elif folder_state(run.folder) == "finished":
                        self._report(run, Outcome("reused"))
                    else:
                        self._start(run)
                if self.running:
                    for sentinel in wait(list(self.running)):
                        self._finish(sentinel)
        except KeyboardInterrupt:
            # the children got the same Ctrl-C: they checkpoint and stop; wait for them
            for _, process, _ in self.running.values():
                process.join()
            raise
        return self.outcomes


# ----------------------------------------------------------------------------------------- report
def _result_rows(
    sweep: Sweep, runs: Sequence[Run], outcomes: dict[str, Outcome] | None
) -> list[dict[str, Any]]:
    rows = []
    for run in runs:
        summary = read_summary(run.folder)
        if outcomes is not None and run.folder.as_posix() in outcomes:
            status = "failed" if outcomes[run.folder.as_posix()].status == "failed" else "finished"
        else:
            status = "finished" if summary else "unfinished"
        row: dict[str, Any] = {"run": run.name, **run.labels, "status": status}
        if sweep.teachers and TEACHER_KEY not in sweep.grid:
            row[TEACHER_KEY] = run.teacher or "none"
        if summary:
            row.update({key: summary.get(key) for key in (*ACCURACIES, *RUN_NUMBERS)})
            row["epoch_s"] = _epoch_seconds(summary)
        rows.append(row)
    return rows


def _epoch_seconds(summary: dict[str, Any]) -> float | None:
    """Training time per epoch (evaluation excluded): the run's wall time over its epochs."""
    wall, epochs = summary.get("wall_time_s"), summary.get("epochs")
    if not isinstance(wall, int | float) or not isinstance(epochs, int) or epochs <= 0:
        return None
    return wall / epochs


def summarise(keys: Sequence[str], rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per grid point (``keys`` labels, seeds pooled): n and mean / std of the finished runs' numbers."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), [])
        if row["status"] == "finished":
            groups[tuple(row[k] for k in keys)].append(row)
    out = []
    for point, members in groups.items():
        entry: dict[str, Any] = dict(zip(keys, point, strict=True))
        entry["n"] = len(members)
        for metric in STATISTICS:
            values = [m[metric] for m in members if isinstance(m.get(metric), int | float)]
            mean, std = report.mean_std(values) if values else (None, None)
            entry[f"{metric}_mean"], entry[f"{metric}_std"] = mean, std
        out.append(entry)
    return out


def _pm(mean: float | None, std: float | None, n: int) -> str:
    if mean is None:
        return "—"
    return f"{mean:.2f} ± {std:.2f} (n={n})" if std is not None else f"{mean:.2f} (n={n})"


def _rounded(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _markdown(
    sweep: Sweep, keys: list[str], summary: list[dict[str, Any]], rows: list[dict], teachers: list[Run]
) -> str:
    parts = ["# Sweep results", ""]
    if teachers:
        teacher_rows = []
        for run in teachers:
            s = read_summary(run.folder) or {}
            acc = s.get("final_test_acc")
            teacher_rows.append(
                {"teacher": run.name, "acc": "—" if acc is None else f"{acc:.2f}", "folder": str(run.folder)}
            )
        parts += [
            report.markdown_table(
                teacher_rows, ["teacher", "acc", "folder"], ["teacher", "test acc (%)", "folder"]
            ),
            "",
        ]
    cells = [
        {
            **{k: s[k] for k in keys},
            "final": _pm(s["final_test_acc_mean"], s["final_test_acc_std"], s["n"]),
            "best": _pm(s["best_test_acc_mean"], s["best_test_acc_std"], s["n"]),
            "time": _rounded(s["wall_time_s_mean"], 0),
            "epoch": _rounded(s["epoch_s_mean"], 1),
            "speed": _rounded(s["inference_img_per_s_mean"], 0),
        }
        for s in summary
    ]
    headers = [
        *keys,
        "final test acc (%)",
        "best test acc (%)",
        "time per run (s)",
        "time per epoch (s)",
        "inference (img/s)",
    ]
    parts += [
        "Mean ± standard deviation over seeds (times and speeds: means).",
        "",
        report.markdown_table(cells, [*keys, "final", "best", "time", "epoch", "speed"], headers),
    ]
    missing = [r for r in rows if r["status"] != "finished"]
    if missing:
        parts += ["", "Not included: " + ", ".join(f"{r['run']} ({r['status']})" for r in missing)]
    return "\n".join(parts) + "\n"


def _plot(
    sweep: Sweep, spec: dict[str, Any], runs: Sequence[Run], summary: list[dict[str, Any]], out: Path
) -> Path:
    x, y = spec["x"], spec["y"]
    hue = spec["hue"] or [k for k in sweep.grid if k != x]
    others = [k for k in sweep.grid if k not in (x, *hue)]
    numeric = _numeric(sweep.grid[x])
    value = {run.labels[x]: run.values[x] for run in runs}
    series: dict[str, list[tuple[Any, float, float | None]]] = {}
    for s in summary:
        if s[f"{y}_mean"] is None:
            continue
        label = ", ".join(f"{k}={s[k]}" for k in (*hue, *others)) or y
        where = float(value[s[x]]) if numeric else s[x]
        series.setdefault(label, []).append((where, s[f"{y}_mean"], s[f"{y}_std"]))
    suffix = f"_by_{'+'.join(spec['hue'])}" if spec["hue"] else ""
    draw = report.error_bar_lines if numeric else report.error_bar_groups
    return draw(
        series,
        out / safe_name(f"{y}_vs_{x}{suffix}.png"),
        x_label=x,
        y_label=f"{y.replace('_', ' ')} (%)",
        title=f"{y.replace('_', ' ')} vs {x} (mean ± std over seeds)",
    )


def write_report(
    sweep: Sweep, teachers: list[Run], runs: list[Run], out: Path, outcomes: dict[str, Outcome] | None = None
) -> dict[str, Path]:
    """results.csv, summary.csv, summary.md and the plots, from the runs' summary.json files."""
    keys = list(sweep.grid)
    rows = _result_rows(sweep, runs, outcomes)
    extra = [TEACHER_KEY] if sweep.teachers and TEACHER_KEY not in keys else []
    columns = ["run", *keys, *extra, "seed", "status", *ACCURACIES, *RUN_NUMBERS, "epoch_s"]
    summary = summarise(keys, rows)
    stats = [f"{m}_{s}" for m in STATISTICS for s in ("mean", "std")]
    files = {
        "results": report.write_csv(rows, columns, out / "results.csv"),
        "summary": report.write_csv(summary, [*keys, "n", *stats], out / "summary.csv"),
    }
    files["markdown"] = out / "summary.md"
    files["markdown"].write_text(_markdown(sweep, keys, summary, rows, teachers))
    for spec in sweep.plots:
        path = _plot(sweep, spec, runs, summary, out)
        files[path.stem] = path
    return files


# ------------------------------------------------------------------------------------------ commands
def _describe_plan(teachers: list[Run], runs: list[Run]) -> None:
    for kind, group in (("teacher", teachers), ("run", runs)):
        for run in group:
            why = conflict(run)
            state = "CONFLICT: " + why if why else folder_state(run.folder)
            print(f"{kind:7} {run.name:40} {state}")


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
    teachers, runs = plan(sweep, out, default_threads(jobs))
    if not runs:
        raise BadInput("the sweep has no runs: give grid: values or seeds:")
    needed = [t for t in teachers if any(r.teacher == t.name for r in runs)]
    if dry_run:
        _describe_plan(needed, runs)
        todo = sum(folder_state(r.folder) != "finished" for r in (*needed, *runs))
        where = out.resolve()
        print(
            f"dry run: {len(runs)} runs + {len(needed)} teacher runs planned under {where}, {todo} to train"
        )
        return 0
    out.mkdir(parents=True, exist_ok=True)
    (out / SAVED_SPEC).write_text(yaml.safe_dump(sweep.spec, sort_keys=False))
    reuse_finished([*needed, *runs], [Path(p) for p in reuse_from])
    threads = default_threads(jobs)
    print(f"sweep: {len(runs)} runs + {len(needed)} teacher runs, {jobs} at a time, train.threads {threads}")
    outcomes = _Scheduler(jobs, train_fn, len(needed) + len(runs)).run_all(
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
    teachers, runs = plan(sweep, out)
    needed = [t for t in teachers if any(r.teacher == t.name for r in runs)]
    files = write_report(sweep, needed, runs, out)
    finished = sum(folder_state(r.folder) == "finished" for r in runs)
    print(f"{finished} of {len(runs)} runs finished")
    print(f"sweep results: {files['markdown'].resolve()} (table), {files['results'].resolve()} (all runs)")
    return files

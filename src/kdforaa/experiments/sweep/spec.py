"""Sweep files: reading, resolving ``from:`` paths and validating a sweep into a :class:`Sweep`.

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
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdforaa.config import merge_trees, read_yaml_file
from kdforaa.errors import BadInput

SWEEP_KEYS = ("base", "grid", "seeds", "name", "teacher", "teachers", "plot")
PLOT_KEYS = ("x", "hue", "y")
ACCURACIES = ("final_test_acc", "best_test_acc")
TEACHER_KEY = "teacher"  # grid key choosing among the sweep's teachers by name


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


def get_dotted(tree: dict[str, Any], dotted: str, default: Any = None) -> Any:
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
            if numeric(grid[key]) and len(grid[key]) > 1
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


def numeric(choices: list[Choice]) -> bool:
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

"""Run a training config into a folder once: reuse it when finished, resume it when killed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kdforaa.config import build_config
from kdforaa.train.loop import Trainer
from kdforaa.train.run_folder import CONFIG, METRICS, SUMMARY, RunFolder


def train_or_reuse(
    tree: dict[str, Any], out: Path, report: Callable[[str], object] | None = None
) -> dict[str, Any]:
    """Train the run in ``out`` unless it finished already; resume it when it was killed. Returns its
    summary. ``report``, where given, is told which of the three it does, in one line (the commands
    that train several runs print it)."""
    folder = RunFolder(out)
    if folder.file(SUMMARY).exists():
        if report is not None:
            report(f"reusing finished run {out}")
        return json.loads(folder.file(SUMMARY).read_text())
    resume = folder.can_resume()
    if folder.has_run() and not resume:  # started but killed before its first checkpoint
        for name in (CONFIG, METRICS):
            folder.file(name).unlink(missing_ok=True)
    cfg = build_config(folder.read_config() if resume else tree)
    if report is not None:
        report(f"{'resuming' if resume else 'training'} {out}")
    return Trainer(cfg, out, resume=resume).run()

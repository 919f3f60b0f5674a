"""Running a sweep's runs: one "spawn" child process per run, at most ``--jobs`` at once, teachers first.

Each run is trained by the train-or-reuse logic (:func:`kdforaa.train.runner.train_or_reuse`): a
finished run (summary.json) is skipped, a killed one (last.pt) resumed. Each run's output goes to its
``train.log``. A failed run is reported and the others go on.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from kdforaa.errors import BadInput, Stopped
from kdforaa.experiments.sweep.plan import Run, conflict, folder_state, read_summary

LOG = "train.log"

TrainFn = Callable[[dict[str, Any], Path], Any]


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
        from kdforaa.train.runner import train_or_reuse

        train_fn = functools.partial(train_or_reuse, report=print)  # into the run's train.log
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


class Scheduler:
    """Runs at most ``jobs`` child processes at once; a run starts once its teacher has finished."""

    def __init__(self, jobs: int, train_fn: TrainFn | None, total: int) -> None:
        self.jobs, self.train_fn, self.total = jobs, train_fn, total
        self.context = multiprocessing.get_context("spawn")
        self.outcomes: dict[str, Outcome] = {}
        self.running: dict[int, tuple[Run, Any, float]] = {}
        self.done = 0

    def _report(self, run: Run, outcome: Outcome) -> None:
        # the progress of `kdforaa sweep` (a line per run: the runs train in other processes, no bar)
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

    def _stop_children(self, signum: int, frame: Any) -> None:
        """SIGTERM to the sweep: pass it on to every running child (each checkpoints and stops), then stop.

        Without this the children would outlive a terminated sweep and keep training into its folders.
        """
        for _, process, _ in self.running.values():
            process.terminate()
        raise Stopped(
            signum,
            "sweep stopped by SIGTERM; its running runs checkpointed: run the same command to continue them",
        )

    def run_all(self, runs: Sequence[Run], teachers: dict[str, Run]) -> dict[str, Outcome]:
        """Train every run (teachers first where needed); returns folder -> outcome."""
        pending = list(runs)
        in_main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, self._stop_children) if in_main_thread else None
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
                        assert isinstance(sentinel, int)  # wait returns some of what it was given
                        self._finish(sentinel)
        except (KeyboardInterrupt, Stopped):
            # the children got the same Ctrl-C (or our SIGTERM): they checkpoint and stop; wait for them
            for _, process, _ in self.running.values():
                process.join()
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        return self.outcomes

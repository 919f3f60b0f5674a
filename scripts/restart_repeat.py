"""Repeat the killed-worker fault of a torchrun run and count how often the group recovers.

Each try starts a 2-process CPU run under ``torchrun --max-restarts=N``, SIGKILLs the second worker as
soon as the first checkpoint exists, and waits for torchrun to restart the group, resume and finish.
The log of every failed try is kept (``--out``/tryK.log); successful tries are cleaned up.

    python scripts/restart_repeat.py --tries 10 --out /tmp/restarts
    python scripts/restart_repeat.py --tries 20 --no-kill --max-restarts 0   # plain runs, no fault
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from cli_helpers import two_process_command, worker_pids  # noqa: E402  (the CI test's own run, repeated)


def one_try(folder: Path, log: Path, max_restarts: int, timeout: float, kill: bool) -> tuple[bool, float]:
    """Run, kill a worker after the first checkpoint (if ``kill``), wait; returns (exit 0, seconds)."""
    command = two_process_command(folder, restarts=max_restarts)
    start = time.time()
    with log.open("w") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        while (
            kill
            and time.time() - start < timeout
            and not (folder / "last.pt").exists()
            and proc.poll() is None
        ):
            time.sleep(0.05)
        workers = worker_pids(proc.pid) if kill else []
        if workers:
            os.kill(workers[-1], signal.SIGKILL)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = -1
    return code == 0, time.time() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=10)
    parser.add_argument("--max-restarts", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per try before it fails")
    parser.add_argument("--out", type=Path, default=Path("runs/restart_repeat"))
    parser.add_argument("--no-kill", action="store_true", help="plain runs: count how many finish cleanly")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    failures = 0
    for k in range(args.tries):
        folder, log = args.out / f"try{k}", args.out / f"try{k}.log"
        shutil.rmtree(folder, ignore_errors=True)
        ok, seconds = one_try(folder, log, args.max_restarts, args.timeout, kill=not args.no_kill)
        outcome = ("finished" if args.no_kill else "recovered") if ok else f"FAILED, log {log}"
        print(f"try {k + 1}/{args.tries}: {outcome} ({seconds:.1f} s)")
        if ok:
            log.unlink()
            shutil.rmtree(folder, ignore_errors=True)
        failures += not ok
    done = "finished" if args.no_kill else "recovered"
    print(f"{args.tries - failures} of {args.tries} tries {done} with --max-restarts={args.max_restarts}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

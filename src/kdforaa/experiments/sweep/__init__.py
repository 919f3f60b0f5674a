"""``kdforaa sweep``: a grid of training runs from one YAML file, run in parallel, resumable, summarised.

Modules: ``spec`` (the sweep file), ``plan`` (the runs it asks for, and their folders' state),
``scheduler`` (child processes, at most ``--jobs`` at once), ``results`` (tables and plots),
``commands`` (``run_sweep`` and ``report_only``, which the CLI calls).
"""

from kdforaa.experiments.sweep.commands import SAVED_SPEC, report_only, run_sweep
from kdforaa.experiments.sweep.plan import Run, plan, run_name, safe_name
from kdforaa.experiments.sweep.results import summarise, write_report
from kdforaa.experiments.sweep.spec import Sweep, load_sweep

__all__ = [
    "SAVED_SPEC",
    "Run",
    "Sweep",
    "load_sweep",
    "plan",
    "report_only",
    "run_name",
    "run_sweep",
    "safe_name",
    "summarise",
    "write_report",
]

"""The architecture of docs/architecture.md holds: import-linter's contracts in pyproject.toml are kept.

Layers, bottom to top: errors -> config, checkpoint -> augment, data, models -> distill -> train ->
analysis -> experiments -> cli; inside augment: random, geometry -> kernels -> op_table -> ops, params,
native -> apply -> policies -> pipeline. No module imports a higher layer (at run time or under
TYPE_CHECKING) and no modules of a package import each other in a loop.
"""

from __future__ import annotations

import logging
import pkgutil
import sys
from pathlib import Path

import pytest
import tomllib

import kdforaa
import kdforaa.augment

pytest.importorskip("importlinter", reason="import-linter is a dev dependency (make test installs it)")
from importlinter.cli import lint_imports as _lint_imports  # noqa: E402


def lint_imports(**options) -> int:
    """import-linter's check, undoing its logging set-up afterwards: it disables every logger that
    exists (``logging.config.dictConfig``), kdforaa's too, for the rest of the test session."""
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    enabled = [logger for logger in loggers if not logger.disabled]
    try:
        return _lint_imports(**options)
    finally:
        for logger in enabled:
            logger.disabled = False


ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def _layered(contract: dict) -> set[str]:
    return {name.strip() for layer in contract["layers"] for name in layer.split("|")}


def test_the_contracts_are_kept(capsys):
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml")) == 0, capsys.readouterr().out


def test_every_module_has_a_layer():
    """A new module or package must be given its place (else no contract would look at it)."""
    package = {f"kdforaa.{m.name}" for m in pkgutil.iter_modules(kdforaa.__path__)} - {"kdforaa.__main__"}
    assert package == _layered(CONTRACTS[0])
    engine = {m.name for m in pkgutil.iter_modules(kdforaa.augment.__path__)}
    assert engine == _layered(CONTRACTS[1])


def test_an_upward_import_under_type_checking_breaks_the_contract(tmp_path, monkeypatch, capsys):
    """The contracts count imports made for type checking only: a lower layer may not name a higher one."""
    package = tmp_path / "layered"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "high.py").write_text("import layered.low\n")
    (package / "low.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import layered.high\n"
    )
    config = tmp_path / "contracts.toml"
    config.write_text(
        '[tool.importlinter]\nroot_package = "layered"\n'
        '[[tool.importlinter.contracts]]\nname = "l"\ntype = "layers"\n'
        'layers = ["layered.high", "layered.low"]\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "layered", raising=False)
    assert lint_imports(config_filename=str(config)) == 1
    assert "layered.low -> layered.high" in capsys.readouterr().out

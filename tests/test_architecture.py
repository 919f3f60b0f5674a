"""The architecture of docs/architecture.md holds: import-linter's contracts in pyproject.toml are kept.

The contracts are the one place the layers are written down: no module imports a higher layer (at run
time or under TYPE_CHECKING) and no modules of a package import each other in a loop. Where the layers
are explained (docs/architecture.md, the docstring of kdforaa.augment), a test checks that the text lists
them in the contracts' order.
"""

from __future__ import annotations

import logging
import pkgutil
import re
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


def _bottom_up(contract: dict) -> dict[str, int]:
    """Module (last dotted part) -> its layer's rank, 0 for the bottom layer."""
    layers = list(reversed(contract["layers"]))
    return {
        name.strip().rsplit(".", 1)[-1]: rank
        for rank, layer in enumerate(layers)
        for name in layer.split("|")
    }


def _mentioned_in_order(text: str, modules: set[str], aliases: dict[str, str] | None = None) -> list[str]:
    """The ``modules`` that ``text`` names in backticks (Markdown or reST), in order of first mention."""
    seen: list[str] = []
    for word in re.findall(r"`+([\w./]+?)`+", text):
        name = (aliases or {}).get(word, word)
        if name in modules and name not in seen:
            seen.append(name)
    return seen


def _assert_in_layer_order(where: str, named: list[str], rank: dict[str, int]) -> None:
    assert set(named) == set(rank), f"{where} leaves out {sorted(set(rank) - set(named))}"
    ranks = [rank[name] for name in named]
    assert ranks == sorted(ranks), f"{where} lists the layers out of the contract's order: {named}"


ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text()


def test_the_augment_docstring_lists_the_engine_bottom_to_top():
    rank = _bottom_up(CONTRACTS[1])
    text = kdforaa.augment.__doc__.split("bottom to top:", 1)[1]
    _assert_in_layer_order("kdforaa/augment/__init__.py", _mentioned_in_order(text, set(rank)), rank)


def test_the_architecture_doc_lists_the_layers_in_the_contracts_order():
    engine = ARCHITECTURE.split("Inside `augment/`, bottom to top:", 1)[1].split("\n\n", 1)[0]
    rank = _bottom_up(CONTRACTS[1])
    _assert_in_layer_order("docs/architecture.md (augment/)", _mentioned_in_order(engine, set(rank)), rank)
    table = ARCHITECTURE.split("| layer (top to bottom) |", 1)[1].split("\n\n", 1)[0]
    rank = _bottom_up(CONTRACTS[0])
    rows = [row.split("|")[1] for row in table.splitlines()[2:]]  # the first column, top to bottom
    aliases = {f"{name}{ending}": name for name in rank for ending in (".py", "/")}
    named = _mentioned_in_order("\n".join(reversed(rows)), set(rank), aliases)
    _assert_in_layer_order("docs/architecture.md (the layer table)", named, rank)


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

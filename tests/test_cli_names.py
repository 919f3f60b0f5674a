"""One tuple of names per concept: the command line's choices and help come from the modules that own
the names, and reading them does not make ``kdforaa --help`` import torch."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from kdforaa.analysis.outliers import resolve_op_set
from kdforaa.augment.op_table import OP_NAMES
from kdforaa.augment.policies import AUTOAUGMENT_POLICIES
from kdforaa.cli import build_parser, main
from kdforaa.config import AUTOAUGMENT_POLICY_NAMES, POLICY_NAMES, WEIGHT_FORMATS, AugmentConfig
from kdforaa.data.fetch import FETCHABLE, SOURCES
from kdforaa.errors import BadInput
from kdforaa.models.export import LAYOUTS


def _command(parser: argparse.ArgumentParser, *names: str) -> argparse.ArgumentParser:
    """The subparser reached by ``names`` (``"data", "fetch"``)."""
    for name in names:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


def _option(parser: argparse.ArgumentParser, dest: str) -> argparse.Action:
    return next(a for a in parser._actions if a.dest == dest)


def test_choices_are_the_owning_modules_tuples():
    parser = build_parser()
    assert tuple(_option(_command(parser, "data", "fetch"), "name").choices) == FETCHABLE == tuple(SOURCES)
    assert tuple(_option(_command(parser, "export"), "format").choices) == LAYOUTS
    assert tuple(_option(_command(parser, "export"), "input_format").choices) == WEIGHT_FORMATS
    assert tuple(_option(_command(parser, "eval"), "format").choices) == WEIGHT_FORMATS
    for command in ("outliers", "augment-grid"):
        assert ", ".join(POLICY_NAMES) in _option(_command(parser, command), "policy").help


def test_policy_names_are_the_configs_without_none():
    assert ("none", *POLICY_NAMES) == AugmentConfig.model_fields["policy"].annotation.__args__
    assert set(POLICY_NAMES).isdisjoint(OP_NAMES)  # augment-grid --policy takes either


def test_the_configs_autoaugment_policies_are_the_engines():
    assert set(AUTOAUGMENT_POLICY_NAMES) <= set(AUTOAUGMENT_POLICIES)  # the engine also has timm's v0
    flag = _option(_command(build_parser(), "outliers"), "autoaugment_policy")
    assert flag.choices == AUTOAUGMENT_POLICY_NAMES
    with pytest.raises(BadInput, match="AutoAugment policy 'v0' is not one of imagenet, cifar10, svhn"):
        resolve_op_set("autoaugment", autoaugment_policy="v0")  # the engine has it, a config does not


@pytest.mark.parametrize(("argv", "names"), [(["data", "fetch", "svhn"], FETCHABLE)])
def test_a_name_not_in_the_tuple_is_refused_listing_the_tuple(argv, names, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'svhn'" in err and ", ".join(map(repr, names)) in err


def test_augment_grid_lists_the_policies_and_the_ops(tmp_path, capsys):
    assert main(["augment-grid", "--policy", "spin", "--out", str(tmp_path / "g.png")]) == 2
    assert f"is not one of {', '.join(POLICY_NAMES + OP_NAMES)}" in capsys.readouterr().err


def test_building_the_parser_imports_no_torch():
    code = (
        "import sys; from kdforaa.cli import build_parser; build_parser().format_help(); "
        "print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"

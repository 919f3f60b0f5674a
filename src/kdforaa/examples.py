"""The example configs and sweep files (the repository's ``configs/``), found from any folder.

A wheel carries them as package data under ``kdforaa/configs`` (``setup.py`` copies them in at build
time); an editable install reads them from the checkout's ``configs/``. ``kdforaa config --example
NAME`` prints one, so the quick start works after ``pip install`` wherever you are.
"""

from __future__ import annotations

from pathlib import Path

from kdforaa.errors import BadInput

_PACKAGE = Path(__file__).resolve().parent


def examples_folder() -> Path | None:
    """Where the examples are: the installed package's ``configs``, else the checkout's (None if neither)."""
    for folder in (_PACKAGE / "configs", _PACKAGE.parents[1] / "configs"):
        if folder.is_dir():
            return folder
    return None


def example_names() -> list[str]:
    """Every example by name: its path under ``configs/`` without ``.yaml`` (``fashion_mnist/teacher``)."""
    folder = examples_folder()
    if folder is None:
        return []
    return sorted(p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.yaml"))


def example_name(text: str) -> str:
    """``text`` as an example's name: ``configs/fashion_mnist/teacher.yaml`` -> ``fashion_mnist/teacher``."""
    return text.replace("\\", "/").removeprefix("./").removeprefix("configs/").removesuffix(".yaml")


def example_path(name: str) -> Path:
    """The file of the example ``name`` (a name, or its path in the repository); BadInput listing the
    names otherwise."""
    names = example_names()
    wanted = example_name(name)
    folder = examples_folder()
    if folder is None or wanted not in names:
        raise BadInput(f"no example config {name!r}; the examples: {', '.join(names) or 'none installed'}")
    return folder / f"{wanted}.yaml"

"""The Python examples of README.md, by the section they stand in."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(section: str, language: str) -> str:
    """The one ```<language> block under the README heading ``## <section>``."""
    text = README.read_text()
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    (block,) = re.findall(rf"```{language}\n(.*?)```", text[start : end if end > 0 else None], flags=re.S)
    return block


def python_block(section: str) -> str:
    """The one ```python block under the README heading ``## <section>``."""
    return _block(section, "python")


def yaml_block(section: str) -> str:
    """The one ```yaml block under the README heading ``## <section>``."""
    return _block(section, "yaml")

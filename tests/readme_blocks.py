"""The Python examples of README.md, by the section they stand in."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_block(section: str) -> str:
    """The one ```python block under the README heading ``## <section>``."""
    text = README.read_text()
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    (block,) = re.findall(r"```python\n(.*?)```", text[start : end if end > 0 else None], flags=re.S)
    return block

"""Write the README's table of config keys from the config schema (the fields' descriptions).

The table sits between two marker comments in README.md; ``tests/test_config.py`` fails when it differs
from what this writes, so after adding or changing a config field run:

    .venv/bin/python scripts/readme_config_table.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from kdforaa.config import config_table

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN = "<!-- config keys: written by scripts/readme_config_table.py from kdforaa/config.py; edit there -->\n"
END = "<!-- end of config keys -->\n"


def with_table(text: str, table: str) -> str:
    """``text`` (the README) with the part between the markers replaced by ``table``."""
    head, begin, rest = text.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise SystemExit(f"README.md has no {BEGIN.strip()} ... {END.strip()} block")
    return head + BEGIN + table + END + tail


def main() -> int:
    text = README.read_text()
    updated = with_table(text, config_table())
    if updated != text:
        README.write_text(updated)
        print("README.md: config key table rewritten", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

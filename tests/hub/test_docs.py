"""The README documents every node option the code has."""

from __future__ import annotations

from pathlib import Path

from hub.config import OPTIONS

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_lists_every_option_with_its_variable() -> None:
    text = README.read_text(encoding="utf-8")
    for option in OPTIONS:
        assert f"`{option.flag}` | `{option.env}`" in text, option.flag

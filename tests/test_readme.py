from __future__ import annotations

import pathlib
import re

from tickwire.config import settings_table


ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_readme_settings_table_matches_the_options() -> None:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- settings-table -->\n(.*?)\n<!-- /settings-table -->", text, re.S)
    assert match, "README.md lost its settings-table markers"
    assert match.group(1) == settings_table(), "README settings table is stale: run `make readme`"


def test_readme_shows_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    assert "make run" in text and "make test" in text
    assert "make test" in (ROOT / ".ci" / "run").read_text()

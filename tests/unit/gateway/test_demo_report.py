"""The demo's closing tables: each column starts at the same terminal cell on every line,
Chinese headers (two cells a character) included."""

from __future__ import annotations

import re

import pytest
from rich.cells import cell_len

from gateway.demo_report import LevelStats, NodeStats, render


def starts(line: str, cells: list[str]) -> list[int]:
    """The terminal cell each of ``cells`` starts at in ``line``."""
    found, at = [], 0
    for cell in cells:
        at = line.index(cell, at)
        found.append(cell_len(line[:at]))
        at += len(cell)
    return found


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_tables_keep_their_columns(lang: str) -> None:
    levels = [LevelStats("430000", 1234, 12, 1, 0, {"furong-01": 700}),
              LevelStats("430102", 700, 7, 0, 2, {"furong-01": 700})]
    nodes = [NodeStats("furong-01", "430102", 705, 3, {"stored": 7, "sent": 1})]
    lines = render(levels, nodes, lang)
    blank = lines.index("")
    level_lines, node_lines = lines[:blank], lines[blank + 1:]
    assert len(level_lines) == 4 and len(node_lines) == 3
    for table in (level_lines, node_lines):
        header, rule, *rows = table
        dashes = rule.split("  ")
        assert set("".join(dashes)) == {"-"}
        columns_at = starts(rule, dashes)
        assert starts(header, re.split(" {2,}", header)) == columns_at
        for row in rows:
            assert starts(row, row.split()) == columns_at
    assert "700/-/700" in node_lines[2] and "7/1/0" in node_lines[2]

"""A log record is one line whatever a sender put in a batch ID, a node ID or a file
name: a newline in one printed a forged line into the operators' log."""

from __future__ import annotations

import logging
import sys

from rich.cells import cell_len

from frontend_machine.agent_command import _KeyValueFormatter
from schemas.messages import OneLineFormatter, columns, one_line

FORGED = "B1\n2026-11-24 10:00:00 INFO exgate.gateway: stored batch B2 from node n9"


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("exgate.gateway", logging.WARNING, __file__, 1, message, args,
                             None)
    made.__dict__.update(extra)
    return made


def test_control_characters_and_line_breaks_are_shown_not_acted_on() -> None:
    assert one_line("a\nb\r\x1b[31mc\u2028d\te") == "a\\x0ab\\x0d\\x1b[31mc\\u2028d\\x09e"
    assert one_line("批次 B1 已入库") == "批次 B1 已入库"


def test_a_forged_batch_id_stays_on_its_record_s_line() -> None:
    line = OneLineFormatter("%(levelname)s %(message)s").format(
        record("refused batch %s", FORGED))
    assert "\n" not in line and line.startswith("WARNING refused batch B1\\x0a2026")


def test_a_traceback_keeps_its_lines_after_the_message() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        failed = record("batch %s failed", "B1\nforged")
        failed.exc_info = sys.exc_info()
    lines = OneLineFormatter("%(message)s").format(failed).splitlines()
    assert lines[0] == "batch B1\\x0aforged failed" and lines[-1] == "ValueError: boom"


def test_the_agent_s_key_values_stay_on_the_line() -> None:
    line = _KeyValueFormatter("n1").format(record("moved to %s", "error", file="a\nb.xml"))
    assert "\n" not in line and "file=a\\x0ab.xml" in line and "node=n1" in line


def test_a_listing_row_stays_one_row_in_its_columns_whatever_an_id_holds() -> None:
    """Measured as shown: an escape sequence is no longer counted as zero cells wide and
    then printed as several, nor can a line break start a forged row."""
    firsts = ["批次号", "B1", FORGED, "B\x1b[31mX\x07"]
    lines = [columns([first, "n1", "已入库"], [16, 6, 4]) for first in firsts]
    assert all("\n" not in line for line in lines)
    assert [cell_len(line[:line.index("n1")]) for line in lines] == \
        [max(16, cell_len(one_line(first))) + 2 for first in firsts]
    assert lines[3].startswith("B\\x1b[31mX\\x07    n1")

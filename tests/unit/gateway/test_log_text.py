"""The gateway's log lines: one table, each line in the configured language."""

from __future__ import annotations

import ast
import string
from pathlib import Path

import pytest

from gateway.dead_letters import _WHY
from gateway.log_text import _TEXT, both, say
from schemas.errors import ConfigError
from schemas.messages import Localized

GATEWAY = Path(__file__).resolve().parents[3] / "gateway"
# Every way a line reaches the log, on any receiver: ``log``, an alias of it,
# ``logging.getLogger(...)`` or the root logger (nothing else in gateway/ has these).
LEVELS = {"info", "warning", "warn", "error", "exception", "critical", "log"}
# The words one language needs and the other does not (the reason's code in English, its
# name in Chinese; an English plural).
ONE_LANGUAGE_ONLY = {"kept-failed": {"reason", "reason_name"},
                     "refused": {"reason", "reason_name"}, "dead-times": {"plural"}}


def gateway_sources() -> dict[str, ast.Module]:
    """The gateway's modules but the demo's, which narrates in its own words."""
    return {path.relative_to(GATEWAY).as_posix(): ast.parse(path.read_text(encoding="utf-8"))
            for path in sorted(GATEWAY.rglob("*.py")) if not path.name.startswith("demo")}


def _imports_say(tree: ast.Module) -> bool:
    return any(isinstance(node, ast.ImportFrom) and node.module == "gateway.log_text"
               and any(alias.name == "say" and alias.asname is None for alias in node.names)
               for node in ast.walk(tree))


def _in_a_language_given(call: ast.Call, position: int) -> bool:
    """The call's language argument is not written into the code (say(..., "en"))."""
    given = call.args[position] if len(call.args) > position else None
    return given is not None and not isinstance(given, ast.Constant)


def _said(message: ast.expr, rest: list[ast.expr], says: bool) -> bool:
    """A line of the table in the configured language, or ("%s", error.message(lang))."""
    if isinstance(message, ast.Call) and isinstance(message.func, ast.Name):
        return says and message.func.id == "say" and _in_a_language_given(message, 1)
    return (isinstance(message, ast.Constant) and message.value == "%s" and len(rest) == 1
            and isinstance(rest[0], ast.Call) and isinstance(rest[0].func, ast.Attribute)
            and rest[0].func.attr == "message" and _in_a_language_given(rest[0], 0))


def english_lines(sources: dict[str, ast.Module]) -> tuple[list[str], int]:
    """(where a log line is not read from the table in the configured language, lines)."""
    english, lines = [], 0
    for name, tree in sources.items():
        says = _imports_say(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in LEVELS and node.args):
                continue
            lines += 1
            args = node.args[1:] if node.func.attr == "log" else node.args
            if not args or not _said(args[0], args[1:], says):
                english.append(f"{name}:{node.lineno}")
    return english, lines


def test_every_log_line_of_the_gateway_is_read_from_the_table() -> None:
    english, lines = english_lines(gateway_sources())
    assert english == [] and lines >= 35


@pytest.mark.parametrize("line", [
    'log.warning("english")', 'log.critical("english")', 'log.warn("english")',
    '_log = log\n_log.error("english")', 'logging.getLogger("x").warning("english")',
    'logging.warning("english")', 'log.info(say("stored-again", "en"))',
    'log.info("%s", error.message("en"))', 'log.log(30, "english")',
])
def test_the_guard_catches_a_line_in_fixed_words(line: str) -> None:
    module = ast.parse(f"from gateway.log_text import say\n{line}\n")
    assert english_lines({"x.py": module})[0] != []


def test_the_guard_takes_say_from_the_table_only() -> None:
    table = ast.parse("from gateway.log_text import say\nlog.info(say('stored', lang))")
    assert english_lines({"x.py": table}) == ([], 1)
    borrowed = ast.parse('from gateway.cli_support import say\nlog.info(say(lang, "中", "en"))')
    assert english_lines({"y.py": borrowed}) == (["y.py:2"], 1)


def used_ids(sources: dict[str, ast.Module]) -> set[str]:
    """The ids the gateway's code asks the table for: the first argument of ``say`` and
    ``both``, what the consumer hands ``_mapped``, and the dead letters' ``why-`` ones."""
    used = {f"why-{reason}" for reason in _WHY}
    for tree in sources.values():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else \
                node.func.attr if isinstance(node.func, ast.Attribute) else ""
            position = {"say": 0, "both": 0, "_mapped": 1}.get(name)
            if position is not None and len(node.args) > position and \
                    isinstance(text_id := node.args[position], ast.Constant):
                used.add(str(text_id.value))
    return used


def fields(template: str) -> set[tuple[str, str, str | None]]:
    """Each placeholder: its name, format spec and conversion."""
    return {(field, spec or "", conversion)
            for _, field, spec, conversion in string.Formatter().parse(template) if field}


def test_every_text_is_in_both_languages_with_the_same_blanks_and_used() -> None:
    assert used_ids(gateway_sources()) == set(_TEXT)
    for text_id, (zh, en) in _TEXT.items():
        assert zh and en and zh != en, text_id
        alone = {name for name, _, _ in fields(zh) ^ fields(en)}
        assert alone == ONE_LANGUAGE_ONLY.get(text_id, set()), text_id


@pytest.mark.parametrize("text_id", sorted(_TEXT))
def test_every_text_renders_in_both_languages(text_id: str) -> None:
    """A rare line that cannot be filled would raise at the moment it matters."""
    zh, en = _TEXT[text_id]
    values = {name: 2.0 if spec else "x" for name, spec, _ in fields(zh) | fields(en)}
    assert say(text_id, "zh", **values) != say(text_id, "en", **values)


def test_a_line_says_its_errors_and_localized_parts_in_its_language() -> None:
    error = ConfigError("the store is away", zh="监察库不可用")
    part = Localized("节点 n1 的批次 B1", "batch B1 from node n1")
    assert say("held", "zh", subject=part, failures=2, error=error) == \
        "节点 n1 的批次 B1：第 2 次处理失败，暂存重试：监察库不可用"
    assert say("held", "en", subject=part, failures=2, error=error) == \
        "batch B1 from node n1 held, attempt 2: the store is away"
    # An error without Chinese (a driver's) is said as it is.
    assert say("held", "zh", subject=part, failures=1, error=ValueError("boom")) == \
        "节点 n1 的批次 B1：第 1 次处理失败，暂存重试：boom"
    assert both("heartbeat-subject", node="n1") == Localized("节点 n1 的心跳",
                                                            "heartbeat of node n1")

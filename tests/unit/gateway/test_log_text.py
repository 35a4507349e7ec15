"""The gateway's log lines: one table, each line in the configured language."""

from __future__ import annotations

import ast
import string
from pathlib import Path

from gateway.dead_letters import _WHY
from gateway.log_text import _TEXT, both, say
from schemas.errors import ConfigError
from schemas.messages import Localized

GATEWAY = Path(__file__).resolve().parents[3] / "gateway"
LEVELS = {"info", "warning", "error", "exception", "log"}


def gateway_sources() -> dict[str, ast.Module]:
    """The gateway's modules but the demo's, which narrates in its own words."""
    return {path.relative_to(GATEWAY).as_posix(): ast.parse(path.read_text(encoding="utf-8"))
            for path in sorted(GATEWAY.rglob("*.py")) if not path.name.startswith("demo")}


def _said(message: ast.expr, rest: list[ast.expr]) -> bool:
    """A line of the table, or ("%s", error.message(lang))."""
    if isinstance(message, ast.Call) and isinstance(message.func, ast.Name):
        return message.func.id == "say"
    return (isinstance(message, ast.Constant) and message.value == "%s" and len(rest) == 1
            and isinstance(rest[0], ast.Call) and isinstance(rest[0].func, ast.Attribute)
            and rest[0].func.attr == "message")


def test_every_log_line_of_the_gateway_is_read_from_the_table() -> None:
    english, lines = [], 0
    for name, tree in gateway_sources().items():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "log"
                    and node.func.attr in LEVELS):
                continue
            lines += 1
            args = node.args[1:] if node.func.attr == "log" else node.args
            if not _said(args[0], args[1:]):
                english.append(f"{name}:{node.lineno}")
    assert english == [] and lines >= 35


def fields(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field}


def test_every_text_is_in_both_languages_and_used() -> None:
    literals = {node.value for tree in gateway_sources().values() for node in ast.walk(tree)
                if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    used = (literals & set(_TEXT)) | {f"why-{reason}" for reason in _WHY}
    assert used == set(_TEXT)
    for text_id, (zh, en) in _TEXT.items():
        assert zh and en and zh != en, text_id
        # Both fill the same blanks, but for the words one language needs alone.
        assert fields(zh) ^ fields(en) <= {"reason", "reason_name", "plural"}, text_id


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

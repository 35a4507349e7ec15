"""Rejects a database row earns before validation: values with no exchange form.

Each is a ``bad-value`` issue with a reason an operator can act on, so that one bad
row is rejected (SYNC_MSG, the outbox) instead of stopping its page on every poll:

- a character XML cannot carry (NUL, a control character pasted into a legacy form);
- bytes that are not valid UTF-8 in a SQLite TEXT column (``sqlite_bytes.sqlite_text``
  hands them over as surrogate escapes instead of failing the whole fetch);
- an empty cursor timestamp: the row cannot be placed in the (timestamp, key) order.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from adapters.sources.sqlite_bytes import printable, undecoded_byte
from schemas.catalog import ElementSpec
from schemas.issues import Issue, IssueCode
from schemas.messages import Localized
from schemas.xml_text import NOT_XML

__all__ = ["unrepresentable", "untimed_issue"]

_SHOWN = 40  # characters of a bad value quoted in the message


def unrepresentable(spec: ElementSpec, fields: Mapping[str, str | None]) -> tuple[Issue, ...]:
    """A ``bad-value`` issue for every field whose text has no exchange form."""
    return tuple(_issues(spec, fields))


def _issues(spec: ElementSpec, fields: Mapping[str, str | None]) -> Iterator[Issue]:
    for code, text in fields.items():
        if text is not None and (reason := _no_exchange_form(text)) is not None:
            yield _bad_value(spec, code, text, reason)


def _no_exchange_form(text: str) -> Localized | None:
    """Why ``text`` cannot travel in an exchange document, or None when it can."""
    if (byte := undecoded_byte(text)) is not None:
        return Localized(
            f"含有不是有效 UTF-8 的字节（如 {byte}），请在源系统中改正",
            f"contains bytes that are not valid UTF-8 (such as {byte}); correct it in "
            "the source system")
    if (found := NOT_XML.search(text)) is not None:
        char = f"U+{ord(found.group()):04X}"
        return Localized(
            f"含有 XML 不能表示的字符 {char}（如 NUL 或控制字符），请在源系统中改正",
            f"contains {char}, a character XML cannot carry (NUL or a control "
            "character); correct it in the source system")
    return None


def _bad_value(spec: ElementSpec, code: str, text: str, detail: Localized) -> Issue:
    shown = printable(text[:_SHOWN])
    return Issue(IssueCode.BAD_VALUE, "bad-value",
                 {"field": code, "label": spec.fields[code].label, "value": shown,
                  "detail": detail}, spec.code, code)


def untimed_issue(spec: ElementSpec, column: str, field: str | None, value: Any) -> Issue:
    """The reject of a cursor row whose timestamp ``column`` (field ``field``) has no
    place in the order: NULL, or (SQLite) text in another notation than
    ``yyyy-MM-dd HH:mm:ss``.

    Filling it with the time of the fix is what makes the cursor read the row: an
    older time may lie behind the cursor, which never goes back.
    """
    label = spec.fields[field].label if field else Localized("更新时间", "update time")
    if value is None:
        shown = "NULL"
        detail = Localized("更新时间为空，无法确定该行的读取顺序；"
                           "请在源系统中填写该列（填入修改时的时间）",
                           "the update time is empty, so the row cannot be ordered; fill the "
                           "column in the source system (with the time of the fix)")
    else:
        shown = printable(str(value)[:_SHOWN])
        detail = Localized("更新时间不是 yyyy-MM-dd HH:mm:ss 写法，无法确定该行的读取顺序；"
                           "请在源系统中按此写法填写该列（填入修改时的时间）",
                           "the update time is not written yyyy-MM-dd HH:mm:ss, so the row "
                           "cannot be ordered; write the column so in the source system "
                           "(with the time of the fix)")
    return Issue(IssueCode.BAD_VALUE, "bad-value",
                 {"field": field or column, "label": label, "value": shown,
                  "detail": detail}, spec.code, field or column)

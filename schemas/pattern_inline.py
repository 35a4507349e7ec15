"""Rewriting an XSD pattern so it can run inside the scanner's record regex.

A field's predicate judges a value on its own: its demands are anchored at the value's
end (``\\Z``). Inside the record regex the value is followed by the rest of the
document, so an anchor cannot say where the value stops; the first ``<`` does (a plain
value has none). A pattern can be checked in place only if it can never read a ``<``,
so every piece that could is narrowed here to exclude it: the result matches exactly
the texts without ``<`` that the pattern matches.

The pattern is read with the standard library's own regex parser (``re._parser``,
private but stable since Python 3.0 as ``sre_parse``) and written back out. Any
construct not handled here (anchors, back references, look-arounds, inline flags)
makes the answer None, and the field is then checked by its predicate in Python.
"""

from __future__ import annotations

import re
import re._constants as sre  # the parser's node names (see above)
import re._parser as sre_parse
from typing import Any

__all__ = ["STOP", "without_stop"]

STOP = "<"
_STOP = ord(STOP)
# Classes written as categories: whether each holds the stop character.
_CATEGORIES = {
    sre.CATEGORY_DIGIT: (r"\d", False),
    sre.CATEGORY_NOT_DIGIT: (r"\D", True),
    sre.CATEGORY_SPACE: (r"\s", False),
    sre.CATEGORY_NOT_SPACE: (r"\S", True),
    sre.CATEGORY_WORD: (r"\w", False),
    sre.CATEGORY_NOT_WORD: (r"\W", True),
}


class _Unsupported(Exception):
    """A construct the rewrite does not handle."""


def without_stop(pattern: str) -> str | None:
    """``pattern`` (a Python regex without flags) rewritten never to match ``<``, or
    None when it holds a construct this module does not rewrite."""
    try:
        parsed = sre_parse.parse(pattern)
        if parsed.state.flags != re.UNICODE:  # inline flags would change the pieces' meaning
            return None
        return _sequence(parsed.data)
    except (_Unsupported, re.error):
        return None


def _sequence(items: list[tuple[Any, Any]]) -> str:
    return "".join(_item(op, argument) for op, argument in items)


def _item(op: Any, argument: Any) -> str:
    if op is sre.LITERAL:
        return "(?!)" if argument == _STOP else _char(argument)
    if op is sre.NOT_LITERAL:
        return f"[^{_char(argument)}{_char(_STOP)}]"
    if op is sre.ANY:
        return f"[^\\n{_char(_STOP)}]"  # without DOTALL, '.' is any but a newline
    if op is sre.IN:
        return _class(argument)
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
        low, high, body = argument
        bounds = f"{{{low},{'' if high is sre.MAXREPEAT else high}}}"
        mode = {sre.MAX_REPEAT: "", sre.MIN_REPEAT: "?", sre.POSSESSIVE_REPEAT: "+"}[op]
        return f"(?:{_sequence(body.data)}){bounds}{mode}"
    if op is sre.BRANCH:
        return "(?:" + "|".join(_sequence(branch.data) for branch in argument[1]) + ")"
    if op is sre.SUBPATTERN:
        _group, add_flags, del_flags, body = argument
        if add_flags or del_flags:
            raise _Unsupported
        # With no back references, a capturing group matches as a plain one does; and
        # the record regex's group numbers must stay its own.
        return f"(?:{_sequence(body.data)})"
    if op is sre.ATOMIC_GROUP:
        return f"(?>{_sequence(argument.data)})"
    raise _Unsupported  # anchors, back references, look-arounds, conditionals


def _class(items: list[tuple[Any, Any]]) -> str:
    negated = bool(items) and items[0][0] is sre.NEGATE
    parts: list[str] = []
    category_holds_stop = False
    for op, argument in items[1:] if negated else items:
        if op is sre.LITERAL:
            if argument != _STOP or negated:
                parts.append(_char(argument))
        elif op is sre.RANGE:
            low, high = argument
            parts.extend((_range_text(low, high),) if negated else _range(low, high))
        elif op is sre.CATEGORY and argument in _CATEGORIES:
            text, holds_stop = _CATEGORIES[argument]
            category_holds_stop |= holds_stop
            parts.append(text)
        else:
            raise _Unsupported
    if negated:  # the complement loses the stop character once it is in the set
        return f"[^{''.join(parts)}{_char(_STOP)}]"
    if not parts:
        return "(?!)"
    text = f"[{''.join(parts)}]"
    # Literals and ranges were cut around the stop character already; a category cannot be.
    return f"(?:(?!{_char(_STOP)}){text})" if category_holds_stop else text


def _range(low: int, high: int) -> tuple[str, ...]:
    """The range without the stop character, as one or two ranges."""
    if not low <= _STOP <= high:
        return (_range_text(low, high),)
    pieces = []
    if low < _STOP:
        pieces.append(_range_text(low, _STOP - 1))
    if high > _STOP:
        pieces.append(_range_text(_STOP + 1, high))
    return tuple(pieces)


def _range_text(low: int, high: int) -> str:
    return f"{_char(low)}-{_char(high)}"


def _char(code: int) -> str:
    """One character as an escape the parser reads back the same in and out of classes."""
    return f"\\U{code:08x}"

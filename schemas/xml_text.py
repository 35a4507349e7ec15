"""What XML 1.0 text can hold, and the cheap tests most text passes.

Every character outside XML's ``Char`` production (C0 controls but tab, LF and CR;
surrogates; U+FFFE and U+FFFF) is unprintable to Python, so one ``str.isprintable``
over a record's joined values, a pass in C, settles the usual case. Only text that
fails it (a tab, a line break, a C1 control) pays for the regular expression, whose
negated class costs several times more per character.
"""

from __future__ import annotations

import re

__all__ = ["NOT_XML", "is_plain_text", "is_xml_text"]

NOT_XML = re.compile(r"[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]")
# What text content must escape (& < >, and CR, which a parser would turn into LF),
# or cannot hold at all.
_NEEDS_ESCAPE = re.compile(r"[&<>\r]|" + NOT_XML.pattern)


def is_xml_text(text: str) -> bool:
    """Whether every character of ``text`` may appear in an XML 1.0 document."""
    return text.isprintable() or NOT_XML.search(text) is None


def is_plain_text(text: str) -> bool:
    """Whether ``text`` is XML text that content can hold as it is, with no escaping."""
    if text.isprintable():  # CR is unprintable: only & < > remain to look for
        return "&" not in text and "<" not in text and ">" not in text
    return _NEEDS_ESCAPE.search(text) is None

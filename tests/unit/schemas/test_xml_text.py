"""The cheap XML-character tests agree with the character classes they stand in for."""

from __future__ import annotations

import re

import pytest

from schemas.xml_text import is_plain_text, is_xml_text

# XML 1.0's Char production, spelled out independently of the module under test.
_XML_CHAR = re.compile(r"[\t\n\r\x20-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]*")
_ESCAPED = frozenset("&<>\r")
_CODE_POINTS = range(0x110000)


def test_every_code_point_is_judged_like_the_char_production() -> None:
    wrong = [hex(point) for point in _CODE_POINTS
             if is_xml_text(chr(point)) != bool(_XML_CHAR.fullmatch(chr(point)))]
    assert wrong == []


def test_every_code_point_needs_escaping_exactly_when_xml_says_so() -> None:
    def plain(char: str) -> bool:
        return bool(_XML_CHAR.fullmatch(char)) and char not in _ESCAPED

    wrong = [hex(point) for point in _CODE_POINTS
             if is_plain_text(chr(point)) != plain(chr(point))]
    assert wrong == []


@pytest.mark.parametrize(("text", "xml", "plain"), [
    ("张三 430102", True, True),
    ("", True, True),
    ("地址\t第二行\n", True, True),        # unprintable yet XML: the slow path says yes
    ("A&B", True, False),
    ("a<b", True, False),
    ("line\r\n", True, False),              # CR would come back as LF
    ("tab\tand <", True, False),            # unprintable and escaped: both paths agree
    ("nul\x00here", False, False),
    ("bad\ud800", False, False),
    ("end\ufffe", False, False),
    ("\x85 C1 control", True, True),        # XML 1.0 allows it, Python calls it unprintable
    ("emoji 😀", True, True),
])
def test_whole_texts(text: str, xml: bool, plain: bool) -> None:
    assert is_xml_text(text) is xml
    assert is_plain_text(text) is plain

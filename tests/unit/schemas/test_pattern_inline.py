"""A pattern rewritten for the record regex matches what it did, and never reads a '<'."""

from __future__ import annotations

import random
import re

import pytest

from schemas.pattern_inline import STOP, without_stop

# (pattern, a value it matches)
PATTERNS = (
    (r"[0-9]{6}", "430100"),
    (r"[0-9A-HJ-NPQRTUWXY]{18}", "91430100MA4L0000XY"),
    (r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[\+\-][0-9]{2})?",
     "2026-01-02T03.5+08"),
    (r"\S(?:[^\r\n]*\S)?", "a b"),
    ("[\x00-\x08\x0b\x0c\x0e-\x1f!-\U0010ffff\t\n\r ]*\\S[!-\U0010ffff ]*", " 中 "),
    (r"[\-0-9A-Z_a-z]{1,6}", "ab_-9"),
    (r"(a|b<c)+", "aa"),
    (r"[^a]*", "bc;"),
    (r"[;-=]+", ";="),
    (r"[\w<]*\d", "ab9"),
    (r"[\D]", "x"),
    (r"a.b", "a;b"),
    (r"x*?y", "xxy"),
    (r"(?:ab)++c", "ababc"),
    (r"(?>a+)b", "aab"),
)
_ALPHABET = "ab<c;=xy09Z-T+.:\t\n\r 中"


def _texts(example: str, rng: random.Random) -> list[str]:
    """Random texts, and the example with characters inserted, dropped or replaced."""
    texts = ["", STOP, example, example + STOP + example, STOP + example]
    for _ in range(3000):
        chars = list(example)
        for _ in range(rng.randint(0, 2)):
            spot = rng.randint(0, len(chars))
            if rng.random() < 0.5 or not chars:
                chars.insert(spot, rng.choice(_ALPHABET))
            else:
                chars[min(spot, len(chars) - 1)] = rng.choice(_ALPHABET)
        texts.append("".join(chars))
        texts.append("".join(rng.choice(_ALPHABET) for _ in range(rng.randint(1, 8))))
    return texts


@pytest.mark.parametrize(("pattern", "example"), PATTERNS)
def test_the_rewrite_matches_exactly_the_values_up_to_the_first_stop(
    pattern: str, example: str
) -> None:
    rewritten = without_stop(pattern)
    assert rewritten is not None
    in_text = re.compile(f"(?:{rewritten}){STOP}")
    original = re.compile(pattern)
    agreed = 0
    for text in _texts(example, random.Random(pattern)):
        value, _stop, _rest = text.partition(STOP)
        match = in_text.match(text + STOP)
        # Read up to the first '<' and no further, whatever follows it.
        assert match is None or match.end() == len(value) + 1, (pattern, text)
        assert bool(match) == bool(original.fullmatch(value)), (pattern, text)
        agreed += bool(match)
    assert agreed > 100  # the comparison saw many matches, not only refusals


def test_a_stop_in_the_pattern_can_never_match() -> None:
    rewritten = without_stop("a<b|c")
    assert rewritten is not None
    assert re.fullmatch(rewritten, "a<b") is None
    assert re.fullmatch(rewritten, "c") is not None


@pytest.mark.parametrize(
    "pattern",
    [r"^a", r"a$", r"\ba", r"(a)\1", r"(?=a)a", r"(?<!b)a", r"(?i)a", r"(a)?(?(1)b|c)"],
)
def test_constructs_it_does_not_rewrite_give_none(pattern: str) -> None:
    assert without_stop(pattern) is None


def test_groups_become_plain_ones_so_the_record_regex_keeps_its_numbers() -> None:
    rewritten = without_stop("(a)(b|c)")
    assert rewritten is not None
    assert re.compile(rewritten).groups == 0

"""Check characters of the unified social credit code and the resident ID number.

``credit_code_valid`` / ``resident_id_valid`` are the per-record checks; only when one
fails does ``credit_code_flaw`` / ``resident_id_flaw`` say why (length, characters or
the check character), so the valid case costs no more than the check itself.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from operator import getitem, mul

__all__ = [
    "CREDIT_CODE_ALPHABET",
    "Flaw",
    "credit_code_check_char",
    "credit_code_flaw",
    "credit_code_strangers",
    "credit_code_valid",
    "resident_id_check_char",
    "resident_id_flaw",
    "resident_id_strangers",
    "resident_id_valid",
]

CREDIT_CODE_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_VALUE = {ch: i for i, ch in enumerate(CREDIT_CODE_ALPHABET)}
_CREDIT_CHARS = frozenset(CREDIT_CODE_ALPHABET)
_CREDIT_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))  # 3^(i-1) mod 31, i = 1..17
# C18 makes the weighted sum of all 18 values (its own weight is 1) a multiple of 31.
_CREDIT_FULL_WEIGHTS = (*_CREDIT_WEIGHTS, 1)
# Each byte of the alphabet to its value: one translate gives a whole code's values.
_CREDIT_BYTE_VALUES = bytes(_CREDIT_VALUE.get(chr(byte), 0) for byte in range(256))

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
# Each position's ASCII digit → digit * weight: one look-up per digit, no int().
_ID_TERMS = tuple({str(digit): digit * weight for digit in range(10)} for weight in _ID_WEIGHTS)
_ID_CHECK = "10X98765432"
_ID_DIGITS = frozenset("0123456789")
_ID_LAST = frozenset("0123456789Xx")
_CODE_LENGTH = 18


class Flaw(StrEnum):
    """Why a code fails, from the most basic: a person fixes them in this order."""

    LENGTH = "length"
    CHARACTERS = "characters"
    CHECK = "check"


def credit_code_check_char(first17: str) -> str:
    """GB 32100-2015: C18 = (31 - sum(value * weight) mod 31) mod 31."""
    if len(first17) != len(_CREDIT_WEIGHTS):
        raise ValueError(f"17 characters expected, got {len(first17)}")
    total = sum(map(mul, map(_CREDIT_VALUE.__getitem__, first17), _CREDIT_WEIGHTS))
    return CREDIT_CODE_ALPHABET[(31 - total % 31) % 31]


@lru_cache(maxsize=65536)
def credit_code_valid(code: str) -> bool:
    """True when ``code`` is 18 characters of the GB 32100 alphabet with a correct check."""
    if len(code) != 18 or not _CREDIT_CHARS.issuperset(code):
        return False
    # The alphabet is ASCII. This runs for each credit code of every record, and an
    # organisation seldom met misses the cache: the sum costs a third less this way
    # than through credit_code_check_char.
    values = code.encode("ascii").translate(_CREDIT_BYTE_VALUES)
    total: int = sum(map(mul, values, _CREDIT_FULL_WEIGHTS))
    return total % 31 == 0


def resident_id_check_char(first17: str) -> str:
    """GB 11643-1999: map sum(digit * weight) mod 11 through ``10X98765432``."""
    if len(first17) != len(_ID_WEIGHTS):
        raise ValueError(f"17 digits expected, got {len(first17)}")
    if first17.isascii() and first17.isdigit():  # the usual case: no int() per digit
        total = sum(map(getitem, _ID_TERMS, first17))
    else:  # int() reads other Unicode digits too, and refuses what is none
        total = sum(map(mul, map(int, first17), _ID_WEIGHTS))
    return _ID_CHECK[total % 11]


@lru_cache(maxsize=65536)
def resident_id_valid(number: str) -> bool:
    """True when ``number`` is a well-formed 18-digit ID with a correct check character."""
    if len(number) != 18 or not number[:17].isdigit() or not number[:17].isascii():
        return False
    return resident_id_check_char(number[:17]) == number[17].upper()


def credit_code_flaw(code: str) -> Flaw | None:
    """Why ``code`` is no valid credit code; None when it is one."""
    if credit_code_valid(code):
        return None
    if len(code) != _CODE_LENGTH:
        return Flaw.LENGTH
    if not _CREDIT_CHARS.issuperset(code):
        return Flaw.CHARACTERS
    return Flaw.CHECK


def credit_code_strangers(code: str) -> str:
    """The characters of ``code`` outside the GB 32100 alphabet, each once, in order."""
    return "".join(dict.fromkeys(ch for ch in code if ch not in _CREDIT_CHARS))


def resident_id_flaw(number: str) -> Flaw | None:
    """Why ``number`` is no valid resident ID number; None when it is one.

    Only the last of its 18 characters may be X (or x); full-width digits, which
    ``str.isdigit`` takes for digits, are characters of their own here.
    """
    if resident_id_valid(number):
        return None
    if len(number) != _CODE_LENGTH:
        return Flaw.LENGTH
    if not (_ID_DIGITS.issuperset(number[:-1]) and number[-1] in _ID_LAST):
        return Flaw.CHARACTERS
    return Flaw.CHECK


def resident_id_strangers(number: str) -> str:
    """The characters of an 18-character ``number`` that are not allowed where they
    stand, each once, in order."""
    wrong = [ch for ch in number[:-1] if ch not in _ID_DIGITS]
    if number[-1:] and number[-1] not in _ID_LAST:
        wrong.append(number[-1])
    return "".join(dict.fromkeys(wrong))

"""Check characters of the unified social credit code and the resident ID number."""

from __future__ import annotations

from functools import lru_cache
from operator import mul

__all__ = [
    "credit_code_check_char",
    "credit_code_valid",
    "resident_id_check_char",
    "resident_id_valid",
]

CREDIT_CODE_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_VALUE = {ch: i for i, ch in enumerate(CREDIT_CODE_ALPHABET)}
_CREDIT_CHARS = frozenset(CREDIT_CODE_ALPHABET)
_CREDIT_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))  # 3^(i-1) mod 31, i = 1..17

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


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
    return credit_code_check_char(code[:17]) == code[17]


def resident_id_check_char(first17: str) -> str:
    """GB 11643-1999: map sum(digit * weight) mod 11 through ``10X98765432``."""
    if len(first17) != len(_ID_WEIGHTS):
        raise ValueError(f"17 digits expected, got {len(first17)}")
    total = sum(map(mul, map(int, first17), _ID_WEIGHTS))
    return _ID_CHECK[total % 11]


@lru_cache(maxsize=65536)
def resident_id_valid(number: str) -> bool:
    """True when ``number`` is a well-formed 18-digit ID with a correct check character."""
    if len(number) != 18 or not number[:17].isdigit() or not number[:17].isascii():
        return False
    return resident_id_check_char(number[:17]) == number[17].upper()

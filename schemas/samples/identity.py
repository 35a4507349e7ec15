"""Generated identifiers that pass the real checks, names, and the three time notations."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from schemas.checkdigits import credit_code_check_char, resident_id_check_char
from schemas.samples import vocab

__all__ = [
    "credit_code",
    "format_time_as",
    "org_code",
    "person_name",
    "resident_id",
    "time_notation",
]

# GB 11714 organisation code characters that the credit-code alphabet also allows
_ORG_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def org_code(rng: random.Random, prefix: str = "") -> str:
    """A 9-character GB 11714 organisation code whose own check character is right."""
    body = prefix + "".join(rng.choice(_ORG_CHARS[:10] if i < 2 else _ORG_CHARS)
                            for i in range(8 - len(prefix)))
    total = sum(_value(ch) * w for ch, w in zip(body, _ORG_WEIGHTS, strict=True))
    check = 11 - total % 11
    return body + ("X" if check == 10 else "0" if check == 11 else str(check))


def _value(ch: str) -> int:
    return int(ch) if ch.isdigit() else ord(ch) - 55


def credit_code(rng: random.Random, registrar: str, division: str) -> str:
    """A GB 32100 code: registrar (11 agency, 91 firm, 52 social org …) + division + org code.

    Firms registered since 2015 carry the ``MA`` prefix in their organisation code.
    """
    prefix = "MA" if registrar.startswith("9") else ""
    first17 = registrar + division + org_code(rng, prefix)
    return first17 + credit_code_check_char(first17)


def resident_id(rng: random.Random, division: str, today: datetime) -> str:
    """A GB 11643 number for an adult (18 to 75) born in ``division``."""
    age_days = rng.randint(18 * 365, 75 * 365)
    birth = (today - timedelta(days=age_days)).strftime("%Y%m%d")
    first17 = f"{division}{birth}{rng.randint(1, 999):03d}"
    return first17 + resident_id_check_char(first17)


def person_name(rng: random.Random) -> str:
    given = rng.choice(vocab.GIVEN)
    if rng.random() < 0.7:
        given += rng.choice(vocab.GIVEN)
    return rng.choice(vocab.SURNAMES) + given


def time_notation(rng: random.Random) -> int:
    """Which of the three legal notations a record uses: legacy form mostly."""
    draw = rng.random()
    return 0 if draw < 0.7 else 1 if draw < 0.9 else 2


def format_time_as(moment: datetime, notation: int) -> str:
    """``yyyy-MM-dd HH:mm:ss`` (0), ``yyyyMMddHHmmss`` (1) or ISO 8601 with +08:00 (2)."""
    m = moment
    if notation == 1:
        return f"{m.year:04d}{m.month:02d}{m.day:02d}{m.hour:02d}{m.minute:02d}{m.second:02d}"
    sep = "T" if notation == 2 else " "
    text = f"{m.year:04d}-{m.month:02d}-{m.day:02d}{sep}{m.hour:02d}:{m.minute:02d}:{m.second:02d}"
    return text + "+08:00" if notation == 2 else text

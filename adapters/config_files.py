"""Reading the TOML configuration files of the agent and the gateway."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

from schemas.errors import ConfigError

__all__ = ["is_number", "read_toml"]


def read_toml(path: Path) -> dict[str, Any]:
    """The parsed file; every way it can fail is a ConfigError naming the file."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


_LARGEST_INTEGER = 2**53  # beyond what any count, size or period in a config means


def is_number(value: Any, low: float, *, integer: bool = False, strict: bool = False) -> bool:
    """True for a finite TOML number (an integer when ``integer``) at or above ``low``
    (above it when ``strict``). TOML spells NaN and infinity; neither is a setting."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
        return False
    if integer and value > _LARGEST_INTEGER:
        return False
    return value > low if strict else value >= low

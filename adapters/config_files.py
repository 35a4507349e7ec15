"""Reading the TOML configuration files of the agent and the gateway."""

from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from schemas.errors import ConfigError, located
from schemas.messages import LANGUAGES

__all__ = [
    "LARGEST_SETTING",
    "is_number",
    "is_secret_option",
    "lang_problem",
    "lang_setting",
    "number_wanted",
    "read_password_file",
    "read_toml",
    "redact",
    "resolve_path",
]


def read_toml(path: Path) -> dict[str, Any]:
    """The parsed file; every way it can fail is a ConfigError naming the file."""
    try:
        # utf-8-sig: Windows Notepad starts a UTF-8 file with a byte-order mark.
        return tomllib.loads(Path(path).read_text(encoding="utf-8-sig"))
    except FileNotFoundError as exc:
        raise located(str(path), "config file not found", "未找到配置文件") from exc
    except UnicodeDecodeError as exc:
        raise located(str(path), f"not UTF-8 (byte {exc.start + 1}): save the file as UTF-8",
                      f"不是 UTF-8 编码（第 {exc.start + 1} 个字节）：请将文件另存为 UTF-8 编码"
                      ) from exc
    except OSError as exc:
        raise located(str(path), f"cannot read config file: {exc}",
                      f"无法读取配置文件：{exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise located(str(path), f"not valid TOML: {exc}",
                      f"不是有效的 TOML 文件：{exc}") from exc


def lang_problem(value: Any) -> tuple[str, str] | None:
    """What is wrong with ``value`` as a ``lang`` setting, in English and Chinese, for the
    caller to name its key in front; None when it is "zh" or "en"."""
    if isinstance(value, str) and value in LANGUAGES:
        return None
    return f"is {value!r}; use \"zh\" or \"en\"", f"为 {value!r}；请使用 \"zh\" 或 \"en\""


def lang_setting(path: Path, table: str) -> str:
    """``[table] lang`` of the config file ``path`` when the file parses at all and it is
    a language, else zh: a config that fails its checks still has its refusal said in the
    language it asks for."""
    try:
        found = read_toml(path).get(table)
    except ConfigError:
        return "zh"
    lang = found.get("lang") if isinstance(found, dict) else None
    return lang if isinstance(lang, str) and lang_problem(lang) is None else "zh"


def read_password_file(path: Path | str, key: str) -> str:
    """The password kept in the file ``path`` (surrounding whitespace, the last newline
    among it, left out), the file given as ``key`` (``'password_file'``,
    ``--password-file``); a ConfigError naming both when it cannot be read or holds no
    password (an empty one would only come back as a refused login, naming neither)."""
    try:
        password = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        from schemas.audit_report import system_reason  # here: it loads the validator

        raise ConfigError(f"{key} {path}: cannot read it: {system_reason(exc, 'en')}",
                          zh=f"{key} {path}：无法读取：{system_reason(exc)}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{key} {path} is not UTF-8 text (byte {exc.start + 1}): write the "
                          "password in it as plain text",
                          zh=f"{key} {path} 不是 UTF-8 文本（第 {exc.start + 1} 字节）：请以纯文本"
                             "写入口令") from exc
    if not password:
        raise ConfigError(f"{key} {path} holds no password: write the password in it",
                          zh=f"{key} {path} 中没有口令：请在其中写入口令")
    return password


def resolve_path(config: Path, value: str) -> Path:
    """``value`` as a path (``~`` expanded); a relative one is taken from the folder of
    the config file ``config``, never from the working directory (``/`` under systemd)."""
    candidate = Path(value).expanduser()
    return candidate if candidate.is_absolute() else Path(config).parent / candidate


# The user, then the password up to the last '@': a password may hold '@', ':', '/' or
# '#', which end urlsplit's netloc early and would leave the rest of it in the log.
# Any scheme, even one SQLAlchemy or a typo spells with "_" or a space
# (oracle+cx_oracle://, "postgres ql://"): the URLs redacted are often the ones that
# did not parse.
_SCHEME = re.compile(r"^[^/?#@]*://")
_PASSWORD = re.compile(r"(?P<user>^[^/?#@]*?://[^:/?#@]*):.*@(?=[^@]*$)", re.S)
# A mistyped URL without its "scheme://" may still hold "user:password@".
_SCHEMELESS_PASSWORD = re.compile(r"(?P<user>^[^:@]*):.*@(?=[^@]*$)", re.S)


# What names a secret among a URL's query options: ?password=, &sslpassword=,
# &wallet_password=, ?pwd=, &ssl_key_password=.
_SECRET_WORDS = "pass|pwd|secret|token|key"
# The value ends at the next option, or where a URL quoted in a message ends.
_SECRET_QUERY = re.compile(
    rf"(?P<name>[?&][^=&#\s]*(?:{_SECRET_WORDS})[^=&#\s]*=)[^&#\s'\"]*", re.I)


def is_secret_option(name: str) -> bool:
    """Whether a URL query option ``name`` holds a secret, whose value is never shown."""
    return re.search(_SECRET_WORDS, name, re.I) is not None


def redact(url: str) -> str:
    """A URL (broker, database) with its password replaced, safe for logs and errors:
    the one before the host, and the values of query options named like a secret."""
    pattern = _PASSWORD if _SCHEME.match(url) else _SCHEMELESS_PASSWORD
    return _SECRET_QUERY.sub(r"\g<name>***", pattern.sub(r"\g<user>:***@", url))


def with_url_password(url: str, password: str) -> str:
    """``url`` with ``password`` for the user it names; the host stays as written (an
    IPv6 address keeps its brackets), and so does the rest."""
    parts = urlsplit(url)
    user, _, host = parts.netloc.rpartition("@")
    netloc = f"{user.partition(':')[0]}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


# Beyond what any count, size or period in a config means (31 years, a petabyte in MB),
# and within what every use of one holds: a thread's wait, a timedelta, bytes in an int.
LARGEST_SETTING = 10**9


def is_number(value: Any, low: float, *, integer: bool = False, strict: bool = False,
              high: float = LARGEST_SETTING) -> bool:
    """True for a finite TOML number (an integer when ``integer``) at or above ``low``
    (above it when ``strict``), and at most ``high``. TOML spells NaN and infinity;
    neither is a setting."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        return False
    if isinstance(value, float) and not math.isfinite(value):  # an int has no float bound
        return False
    if value > high:
        return False
    return value > low if strict else value >= low


def number_wanted(low: float, *, integer: bool = False) -> tuple[str, str]:
    """What ``is_number`` takes, in English and Chinese: "a number from 0.01 to …"."""
    kind, kind_zh = ("a whole number", "整数") if integer else ("a number", "数值")
    return (f"{kind} from {low:g} to {LARGEST_SETTING:,}",
            f"{low:g} 到 {LARGEST_SETTING} 之间的{kind_zh}")

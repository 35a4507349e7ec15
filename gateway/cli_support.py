"""Small helpers shared by the operators' and auditors' commands (replay, export, audit).

- ``gateway_config_path``: ``-c FILE``, else ``$EXGATE_CONFIG``, else
  ``/etc/exgate/gateway.toml``;
- ``parse_moment``: ``--since`` / ``--until`` values in the forms people type;
- ``say``: one sentence in Chinese (default) or English;
- ``error_detail``: an error's message, in the chosen language when the error knows both
  (``schemas.errors.message_of``);
- ``printable`` / ``echo``: text that agents or messages control (batch ids, reasons,
  last errors) never reaches a terminal as control codes;
- ``log_to_stderr``: the log lines of the long-running gateway commands;
- ``check_folder``: a folder option (``--registry``, ``--base``, ``--broker-base``, the
  folder ``audit verify`` reads) that is no folder exgate can read, named with why in
  both languages (click's own checks refuse in English only, so they are off).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
from datetime import datetime, timedelta
from pathlib import Path

import click

from adapters.amqp.logs import quiet_pika
from schemas.errors import ConfigError, located
from schemas.errors import message_of as error_detail
from schemas.messages import OneLineFormatter
from schemas.times import BEIJING, parse_time

__all__ = ["DEFAULT_GATEWAY_CONFIG", "check_folder", "echo", "error_detail",
           "gateway_config_path", "log_to_stderr", "parse_moment", "printable", "say"]

DEFAULT_GATEWAY_CONFIG = Path("/etc/exgate/gateway.toml")
_RELATIVE = re.compile(r"(\d+)([mhd])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
# C0 controls but newline and tab, DEL and C1: an ESC or CSI from a hostile agent could
# rewrite an operator's screen.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with control characters shown as ``\\xNN`` instead of acting on a terminal."""
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


def echo(text: str, *, err: bool = False) -> None:
    """``click.echo`` for text lines that may carry what agents or messages sent."""
    click.echo(printable(text), err=err)


def log_to_stderr() -> None:
    """INFO and up on stderr (journald keeps it), one line a record whatever a sender
    put in an ID, pika's connection chatter left out."""
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    quiet_pika()


def check_folder(path: Path, name: str, name_zh: str | None = None, *,
                 may_be_missing: bool = False) -> bool:
    """Whether the folder ``path``, given as ``name`` (an option such as ``--registry``;
    ``name_zh`` in Chinese when it differs), exists; a ``ConfigError`` (exit code 2)
    naming it and why when it is no folder, cannot be listed or entered, or is missing
    and not ``may_be_missing`` (a command that creates it, or says so in its own words).
    The system's reasons are given in Chinese as ``exgate validate`` gives them."""
    where, where_zh = f"{name} {path}", f"{name_zh or name} {path}"
    try:
        if not stat.S_ISDIR(os.stat(path).st_mode):
            raise located(where, "is not a folder", "不是文件夹", where_zh=where_zh)
        if not os.access(path, os.R_OK | os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        with os.scandir(path):
            pass
    except FileNotFoundError:
        if may_be_missing:
            return False
        raise located(where, "does not exist", "不存在", where_zh=where_zh) from None
    except OSError as exc:
        from schemas.audit_report import unreadable_reason  # here: it loads the validator

        reason = exc.strerror or str(exc)
        raise located(where, f"cannot be read: {reason}",
                      f"无法读取：{unreadable_reason(reason)}", where_zh=where_zh) from exc
    return True


def gateway_config_path(given: Path | None) -> Path:
    if given is not None:
        return given
    env = os.environ.get("EXGATE_CONFIG")
    return Path(env) if env else DEFAULT_GATEWAY_CONFIG


def parse_moment(text: str | None, now: datetime | None = None) -> datetime | None:
    """``2026-11-20``, ``2026-11-20 10:00:00``, ISO 8601 or ``30m`` / ``24h`` / ``7d`` ago.

    Returns naive Beijing time, as the store keeps its times; ``ConfigError`` otherwise.
    """
    if text is None or not text.strip():
        return None
    value = text.strip()
    try:
        relative = _RELATIVE.fullmatch(value)
        if relative:
            now = now or datetime.now(BEIJING)
            delta = timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
            return (now - delta).astimezone(BEIJING).replace(tzinfo=None)
        if len(value) == 10 and value[4] == "-":
            value += " 00:00:00"
        moment = parse_time(value)
    except OverflowError:  # 99999999d ago, or a zoned time beyond year 9999 in Beijing
        moment = None
    if moment is None:
        raise ConfigError(f"time {text!r} is not understood; use 2026-11-20, "
                          "'2026-11-20 10:00:00', ISO 8601 or 24h / 7d",
                          zh=f"无法识别时间 {text!r}：请使用 2026-11-20、'2026-11-20 10:00:00'、"
                             "ISO 8601 或 24h / 7d 等形式")
    return moment.replace(tzinfo=None)


def say(lang: str, zh: str, en: str) -> str:
    return en if lang == "en" else zh

"""``exgate frontdb init``: create the front-end tables (``frontdb_create.create_all``) or print
their DDL, in the operator's language.

The password of the URL's user may stay off the command line (``ps``, shell history):
``--password-file FILE`` or ``$EXGATE_FRONTDB_PASSWORD``, as the agent's ``[[sources]]
password_file`` and the gateway's ``EXGATE_STORE_PASSWORD``. A password is never
printed: URLs are shown with it masked.

Exit codes: 0 done, 1 the database failed (or its triggers do not compile), 2 a bad
URL, dialect or password option, or front-end tables lacking columns (or missing,
with ``--triggers-only``).
"""

from __future__ import annotations

import os
from pathlib import Path

import click
from sqlalchemy.engine import URL

from adapters.config_files import read_password_file, redact
from adapters.db_connect import engine_url, shown_url
from adapters.frontdb import ddl_script
from adapters.frontdb_create import create_all
from schemas.errors import ConfigError, ExgateError

__all__ = ["PASSWORD_ENV", "init_url", "run_init"]

PASSWORD_ENV = "EXGATE_FRONTDB_PASSWORD"


def init_url(url: str, password_file: Path | None) -> URL:
    """``url`` parsed, with the password of ``password_file`` or ``$EXGATE_FRONTDB_PASSWORD``
    (an empty variable is none) for the user the URL names. ``ConfigError`` when both
    are given, or either together with a URL that holds a password or names no user."""
    parsed = engine_url(url)
    from_env = os.environ.get(PASSWORD_ENV) or None
    if password_file is None and from_env is None:
        return parsed
    if password_file is not None and from_env is not None:
        raise ConfigError(f"--password-file and ${PASSWORD_ENV} both give a password: keep "
                          "one of them",
                          zh=f"--password-file 与环境变量 {PASSWORD_ENV} 都给出了口令：请只保留"
                             "其中一个")
    given = "--password-file" if password_file is not None else f"${PASSWORD_ENV}"
    given_zh = "--password-file" if password_file is not None else f"环境变量 {PASSWORD_ENV}"
    if parsed.password is not None:
        raise ConfigError(f"--url {redact(url)} holds a password and {given} gives one too: "
                          "leave it out of the URL",
                          zh=f"--url {redact(url)} 中已有口令，{given_zh} 又给出了口令："
                             "请从 URL 中去掉口令")
    if parsed.username is None:
        raise ConfigError(f"--url {redact(url)} names no user for the password of {given}: "
                          "write it as DIALECT://USER@HOST/DATABASE",
                          zh=f"--url {redact(url)} 没有指定用户，{given_zh} 给出的口令无处可用："
                             "请写成 DIALECT://USER@HOST/DATABASE")
    password = from_env if password_file is None else \
        read_password_file(password_file, "--password-file")
    return parsed.set(password=password)


def run_init(url: str, print_sql: bool, triggers: bool, lang: str = "zh",
             password_file: Path | None = None, triggers_only: bool = False) -> int:
    """``exgate frontdb init``: exit codes as the module's docstring has them. ``--sql``
    needs no password: it reads neither source of one.
    ``triggers_only``: (print the statements that) replace the triggers alone, on the
    tables already there (after an upgrade, say: the rest of the script would fail)."""
    triggers = triggers or triggers_only
    try:
        if print_sql:
            click.echo(ddl_script(url, triggers, tables_too=not triggers_only), nl=False)
        else:
            target = init_url(url, password_file)
            create_all(target, triggers, tables_too=not triggers_only)
            where = shown_url(target)
            if triggers_only:
                said = (f"changelog triggers replaced at {where}" if lang == "en" else
                        f"变更日志触发器已替换：{where}")
            else:
                said = (f"front-end tables ready at {where}" if lang == "en" else
                        f"前置库表已就绪：{where}")
            click.echo(said)
    except ExgateError as exc:  # a ConfigError, the database failing, broken triggers
        click.echo(f"exgate frontdb init: {exc.message(lang)}", err=True)
        return 2 if isinstance(exc, ConfigError) else 1
    return 0

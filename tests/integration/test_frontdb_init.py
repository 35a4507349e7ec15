"""``exgate frontdb init`` on a real PostgreSQL as a role with a password given off the
command line: by ``--password-file`` and by ``$EXGATE_FRONTDB_PASSWORD``."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from adapters.db_connect import engine_url
from adapters.frontdb import CHANGELOG
from cli import main
from tests.servers import fresh_name


@pytest.fixture
def role_url(pg_url: str) -> Iterator[tuple[str, str]]:
    """A URL of the fresh database naming a new role, without its password; and the
    password (with characters a URL would have to escape)."""
    admin = engine_url(pg_url)
    role, password = fresh_name("front"), f"{secrets.token_urlsafe(12)}@:/#"
    with psycopg.connect(host=admin.host, port=admin.port, user=admin.username,
                         password=admin.password, dbname=admin.database,
                         autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        conn.execute(f"GRANT USAGE, CREATE ON SCHEMA public TO {role}")
    url = sa.URL.create(admin.drivername, username=role, host=admin.host, port=admin.port,
                        database=admin.database).render_as_string()
    yield url, password
    with psycopg.connect(host=admin.host, port=admin.port, user=admin.username,
                         password=admin.password, dbname=admin.database,
                         autocommit=True) as conn:
        conn.execute(f"DROP OWNED BY {role}")
        conn.execute(f"DROP ROLE {role}")


def _tables(pg_url: str) -> set[str]:
    engine = sa.create_engine(engine_url(pg_url))
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.parametrize(("given", "lang", "said"), [
    ("file", "zh", "前置库表已就绪"), ("environment", "en", "front-end tables ready at")])
def test_the_role_password_comes_from_off_the_command_line(
        role_url: tuple[str, str], pg_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, given: str, lang: str, said: str) -> None:
    url, password = role_url
    args = ["frontdb", "init", "--url", url, "--triggers", "--lang", lang]
    if given == "file":
        file = tmp_path / "front-db.password"
        file.write_text(password + "\n", encoding="utf-8")
        args += ["--password-file", str(file)]
    else:
        monkeypatch.setenv("EXGATE_FRONTDB_PASSWORD", password)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert said in result.output and password not in result.output
    assert {"ex_sbxx", "ex_bj", CHANGELOG.lower()} <= _tables(pg_url)


def test_a_wrong_password_is_a_database_failure_that_never_shows_it(
        role_url: tuple[str, str], pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    url, _password = role_url
    monkeypatch.setenv("EXGATE_FRONTDB_PASSWORD", "Wr0ng-pa55")
    result = CliRunner().invoke(main, ["frontdb", "init", "--url", url, "--lang", "en"])
    assert result.exit_code == 1
    assert "password authentication failed" in result.output
    assert "Wr0ng-pa55" not in result.output
    assert "ex_sbxx" not in _tables(pg_url)

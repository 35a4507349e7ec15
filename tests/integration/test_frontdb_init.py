"""``exgate frontdb init`` on a real PostgreSQL as a role with a password given off the
command line: by ``--password-file`` and by ``$EXGATE_FRONTDB_PASSWORD``."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from adapters.db_connect import engine_url
from adapters.frontdb import CHANGELOG, front_tables
from adapters.frontdb_create import LackingColumns, create_all
from cli import main
from tests.servers import fresh_name
from tests.unit.adapters.front_rows import row


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


def test_the_legacy_systems_role_needs_no_right_on_the_changelog(pg_url: str) -> None:
    # The trigger function ran with the legacy user's rights: without INSERT on
    # EX_CHANGELOG (or with it off its search_path), every legacy INSERT failed.
    create_all(pg_url, triggers=True)
    admin = engine_url(pg_url)
    role, password = fresh_name("legacy"), secrets.token_urlsafe(12)
    connect = {"host": admin.host, "port": admin.port, "dbname": admin.database,
               "autocommit": True}
    with psycopg.connect(user=admin.username, password=admin.password, **connect) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    try:
        with psycopg.connect(user=admin.username, password=admin.password,
                             **connect) as conn:
            conn.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
            conn.execute(f"GRANT SELECT, INSERT, UPDATE ON ex_sl TO {role}")
            sequence = conn.execute(
                "SELECT pg_get_serial_sequence('ex_sl', 'row_id')").fetchone()
            assert sequence is not None
            conn.execute(f"GRANT USAGE ON SEQUENCE {sequence[0]} TO {role}")
        sl = front_tables("postgresql").elements["SL"]
        legacy = sa.create_engine(engine_url(pg_url).set(username=role, password=password))
        try:
            with legacy.begin() as conn:
                conn.exec_driver_sql("SET search_path = pg_catalog")  # the log is off it
                public = sl.to_metadata(sa.MetaData(), schema="public")
                conn.execute(public.insert(), [row("SL", 1)])
                conn.execute(public.update().values(BLRXM="李四"))
        finally:
            legacy.dispose()
        with psycopg.connect(user=admin.username, password=admin.password, **connect) as conn:
            logged = conn.execute("SELECT table_name, op FROM ex_changelog ORDER BY seq").fetchall()
        assert logged == [("EX_SL", "I"), ("EX_SL", "U")]
    finally:
        with psycopg.connect(user=admin.username, password=admin.password, **connect) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def test_mariadb_logs_a_correction_of_the_case_only_and_keeps_fractions(
        mariadb_url: str) -> None:
    create_all(mariadb_url, triggers=True)
    tables = front_tables("mariadb")
    sl, log = tables.elements["SL"], tables.changelog
    engine = sa.create_engine(engine_url(mariadb_url))
    try:
        late = datetime(2026, 11, 20, 23, 59, 59, 500000)
        with engine.begin() as conn:
            conn.execute(sl.insert(), [row("SL", 1) | {"SLBM": "11430102mb0000001d",
                                                       "SLSJ": late}])
            conn.execute(sl.update().values(SLBM="11430102MB0000001D"))
        with engine.connect() as conn:
            ops = conn.execute(sa.select(log.c.OP).order_by(log.c.SEQ)).scalars().all()
            stored = conn.execute(sa.select(sl.c.SLSJ)).scalar_one()
        assert ops == ["I", "U"]
        assert stored == late
    finally:
        engine.dispose()


@pytest.mark.parametrize("server", ["pg_url", "mariadb_url"])
def test_an_older_table_is_refused_on_a_server_too(
        request: pytest.FixtureRequest, server: str) -> None:
    url = request.getfixturevalue(server)
    engine = sa.create_engine(engine_url(url))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE EX_SBXX (ROW_ID BIGINT PRIMARY KEY,"
                                 " SBLSH VARCHAR(50))")
        with pytest.raises(LackingColumns) as refused:
            create_all(url, triggers=True)
        [(table, columns)] = refused.value.lacking.items()
        expected = {c.name.upper() for c in front_tables(engine.dialect.name)
                    .elements["SBXX"].columns} - {"ROW_ID", "SBLSH"}
        assert table.upper() == "EX_SBXX" and {c.upper() for c in columns} == expected
        assert {t.upper() for t in sa.inspect(engine).get_table_names()} == {"EX_SBXX"}
    finally:
        engine.dispose()

"""A front-end database's failure as the operator reads it: the driver's words, in the
agent's language, without SQLAlchemy's SQL dump."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from adapters.db_connect import engine_url, shown_url
from schemas.errors import ConfigError, RetriableError
from tests.unit.adapters.front_rows import Clock
from tests.unit.adapters.test_database_source import open_source


def test_a_failing_read_names_the_drivers_error_without_the_sql(
        url: str, engine: sa.Engine, clock: Clock) -> None:
    source = open_source(url, clock, strategy="flag", tables=["SBXX"])
    with engine.begin() as conn:
        conn.execute(sa.text('DROP TABLE "EX_SBXX"'))
    try:
        with pytest.raises(RetriableError) as failed:
            list(source.read({}))
    finally:
        source.close()
    en, zh = failed.value.message("en"), failed.value.message("zh")
    assert "no such table" in en and "no such table" in zh  # the driver's own words
    assert en.startswith("source 'front': cannot read ")
    assert zh.startswith("数据源 'front'：无法读取 ")
    for text in (en, zh):
        assert "[SQL:" not in text and "[parameters:" not in text
        assert "Background on this error" not in text and "SELECT" not in text
    assert "[SQL:" in str(failed.value.__cause__)  # kept for whoever logs the traceback


def test_a_password_in_the_urls_query_is_never_shown() -> None:
    # SQLAlchemy hides only the password before the host: "cannot read …?password=…"
    # reached the log, the `once` summary and the heartbeats.
    url = engine_url("postgresql://exgate@127.0.0.1:1/front?password=QueryS3cret")
    assert shown_url(url) == "postgresql+psycopg://exgate@127.0.0.1:1/front?password=***"
    with pytest.raises(ConfigError) as refused:
        engine_url("postgresql://exgate@127.0.0.1:abc/front?password=QueryS3cret")
    assert "QueryS3cret" not in str(refused.value) + refused.value.message("zh")

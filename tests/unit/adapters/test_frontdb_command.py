"""``exgate frontdb init`` takes the password of the URL's user from ``--password-file``
or ``$EXGATE_FRONTDB_PASSWORD``, off the command line (``ps``, shell history), and never
prints it. The real PostgreSQL runs are in tests/integration/test_frontdb_init.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import URL

from adapters import frontdb_command
from cli import main

SECRET = "Fr0nt:p@ss/w#rd"
USER_URL = "postgresql://exgate@127.0.0.1:1/front"  # port 1: nothing listens


@pytest.fixture(autouse=True)
def no_password_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXGATE_FRONTDB_PASSWORD", raising=False)


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    file = tmp_path / "front-db.password"
    file.write_text(SECRET + "\n", encoding="utf-8")
    return file


@pytest.fixture
def created(monkeypatch: pytest.MonkeyPatch) -> list[URL]:
    """The URLs ``create_all`` was given, in place of a database."""
    urls: list[URL] = []
    monkeypatch.setattr(frontdb_command, "create_all",
                        lambda url, triggers=False, tables_too=True: urls.append(url))
    return urls


def _init(*args: str, lang: str = "zh") -> tuple[int, str]:
    result = CliRunner().invoke(main, ["frontdb", "init", *args, "--lang", lang])
    return result.exit_code, result.output


def test_the_password_file_gives_the_urls_user_its_password_never_printed(
        password_file: Path, created: list[URL]) -> None:
    code, output = _init("--url", USER_URL, "--password-file", str(password_file))
    assert code == 0, output
    [url] = created
    assert (url.username, url.password, url.host) == ("exgate", SECRET, "127.0.0.1")
    assert output == "前置库表已就绪：postgresql+psycopg://exgate:***@127.0.0.1:1/front\n"


def test_the_environment_gives_the_password_too(monkeypatch: pytest.MonkeyPatch,
                                                created: list[URL]) -> None:
    monkeypatch.setenv("EXGATE_FRONTDB_PASSWORD", SECRET)
    code, output = _init("--url", USER_URL, lang="en")
    assert code == 0, output
    assert created[0].password == SECRET and SECRET not in output


def test_without_either_the_url_is_used_as_written(created: list[URL]) -> None:
    assert _init("--url", "postgresql://exgate:inline@127.0.0.1:1/front")[0] == 0
    assert created[0].password == "inline"


@pytest.mark.parametrize(("lang", "words"), [
    ("zh", "--url postgresql://exgate:***@127.0.0.1:1/front 中已有口令，--password-file 又给出"),
    ("en", "--url postgresql://exgate:***@127.0.0.1:1/front holds a password and "
           "--password-file gives one too"),
])
def test_a_password_in_the_url_and_in_a_file_is_refused(
        password_file: Path, created: list[URL], lang: str, words: str) -> None:
    code, output = _init("--url", "postgresql://exgate:Inline5ecret@127.0.0.1:1/front",
                         "--password-file", str(password_file), lang=lang)
    assert code == 2 and words in output
    assert "Inline5ecret" not in output and SECRET not in output and created == []


def test_a_password_in_the_url_and_in_the_environment_is_refused(
        monkeypatch: pytest.MonkeyPatch, created: list[URL]) -> None:
    monkeypatch.setenv("EXGATE_FRONTDB_PASSWORD", SECRET)
    code, output = _init("--url", "postgresql://exgate:Inline5ecret@127.0.0.1:1/front",
                         lang="en")
    assert code == 2 and "$EXGATE_FRONTDB_PASSWORD gives one too" in output
    assert "Inline5ecret" not in output and SECRET not in output and created == []


def test_a_file_and_the_environment_together_are_refused(
        password_file: Path, monkeypatch: pytest.MonkeyPatch, created: list[URL]) -> None:
    monkeypatch.setenv("EXGATE_FRONTDB_PASSWORD", SECRET)
    code, output = _init("--url", USER_URL, "--password-file", str(password_file))
    assert code == 2 and created == []
    assert "--password-file 与环境变量 EXGATE_FRONTDB_PASSWORD 都给出了口令" in output


@pytest.mark.parametrize("option", ["file", "env"])
def test_a_password_for_a_url_without_a_user_is_refused(
        tmp_path: Path, password_file: Path, monkeypatch: pytest.MonkeyPatch,
        option: str) -> None:
    """SQLite has no users: the password would be dropped without a word."""
    url = f"sqlite:///{tmp_path / 'front.db'}"
    args = ["--url", url]
    if option == "file":
        args += ["--password-file", str(password_file)]
    else:
        monkeypatch.setenv("EXGATE_FRONTDB_PASSWORD", SECRET)
    code, output = _init(*args, lang="en")
    assert code == 2 and f"--url {url} names no user for the password of" in output
    assert not (tmp_path / "front.db").exists()


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_password_file_that_cannot_be_read_is_named(tmp_path: Path, created: list[URL],
                                                      lang: str) -> None:
    missing = tmp_path / "no-such.password"
    code, output = _init("--url", USER_URL, "--password-file", str(missing), lang=lang)
    assert code == 2 and created == []
    assert (f"--password-file {missing}：无法读取" if lang == "zh" else
            f"--password-file {missing}: cannot read it") in output
    assert "Invalid value" not in output


def test_sql_reads_no_password(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The DDL needs none: a DBA's environment or a stale file does not stop it."""
    monkeypatch.setenv("EXGATE_FRONTDB_PASSWORD", SECRET)
    code, output = _init("--url", "oracle://", "--sql", "--password-file",
                         str(tmp_path / "no-such.password"))
    assert code == 0 and "CREATE TABLE ex_sbxx" in output


def test_a_database_failure_never_shows_the_password(password_file: Path) -> None:
    code, output = _init("--url", USER_URL, "--password-file", str(password_file),
                         lang="en")
    assert code == 1
    assert "cannot create the front-end tables at postgresql+psycopg://exgate:***@" in output
    assert SECRET not in output


@pytest.mark.parametrize(("query", "lang", "said"), [
    ("charset=bogus", "zh", "驱动不接受 URL 中的某个选项（charset）"),
    ("foo=1", "en", "the driver refused an option of the URL (foo, charset)"),
])
def test_an_option_the_driver_refuses_is_a_url_error_not_a_traceback(
        query: str, lang: str, said: str) -> None:
    # PyMySQL fails on these with errors of its own before it reaches the network.
    code, output = _init("--url", f"mysql+pymysql://u@127.0.0.1:1/db?{query}", lang=lang)
    assert code == 2 and said in output


def test_a_refused_option_never_shows_a_secret_option_value(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import pymysql

    def quoting(**kwargs: object) -> None:
        raise ValueError(f"cannot load the key with {kwargs['ssl_key_password']!r}, "
                         f"charset {kwargs['charset']!r}, login {kwargs['password']!r}")

    monkeypatch.setattr(pymysql, "connect", quoting)
    code, output = _init("--url", "mysql+pymysql://u:l0gin@127.0.0.1:1/db?ssl_key_password="
                         "k3ypass&charset=utf8mb4", lang="en")
    assert code == 2
    assert ("the driver refused an option of the URL (ssl_key_password, charset): "
            "ValueError: cannot load the key with '***', charset 'utf8mb4', login '***'") \
        in output
    assert "k3ypass" not in output and "l0gin" not in output

"""The agent's TOML config: the shipped example loads, and bad values are ConfigErrors."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import pytest

from adapters.sources.database import source_url
from adapters.sources.db_options import parse_options
from adapters.sources.folder_options import FolderOptions
from frontend_machine.config import load_config
from frontend_machine.link import LinkSettings
from schemas.catalog import load_catalog
from schemas.errors import ConfigError
from tests.tls_files import self_signed_pem

EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "agent.example.toml"


def test_the_example_config_loads_with_every_key() -> None:
    config = load_config(EXAMPLE)
    assert (config.node.id, config.node.division) == ("hn-430102-swj-01", "430102")
    assert config.outbox.budget_bytes == 2048 << 20 and config.agent.lang == "zh"
    kinds = {source.kind: source.options for source in config.sources}
    database = parse_options(kinds["db"], load_catalog())
    assert (database.strategy, database.tables) == ("flag", ("SBXX", "SL", "SPGC", "BJ", "SF"))
    assert database.password_file == "/etc/exgate/front-db.password"
    folder = FolderOptions.parse(kinds["folder"])
    assert (folder.stable_seconds, folder.rescan_seconds, folder.observer) == (5, 30, "native")
    assert config.broker is not None
    # The broker URL must open: pika cannot parse a user without a password.
    LinkSettings(config.broker.url, config.node.id, "user", "secret").parameters()


def write(tmp_path: Path, broker_url: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(f'[node]\nid = "n1"\ndivision = "430102"\n[outbox]\npath = "o.db"\n'
                    f'[broker]\nurl = "{broker_url}"\n'
                    f'[[sources]]\nkind = "folder"\nname = "drop"\npath = "drop"\n',
                    encoding="utf-8")
    return path


def test_a_division_of_no_province_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "amqps://mq.example:5671/exgate")
    path.write_text(path.read_text(encoding="utf-8").replace("430102", "403102"),
                    encoding="utf-8")
    with pytest.raises(ConfigError, match=r"node\.division") as caught:
        load_config(path)
    assert "'403102'" in caught.value.message("en")
    assert "前两位须为省级代码" in caught.value.message("zh")


def test_a_broker_url_with_a_user_but_no_password_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"broker\.url") as caught:
        load_config(write(tmp_path, "amqps://node-1@mq.example:5671/exgate"))
    assert "key_file" in str(caught.value)


def test_a_broker_url_whose_ca_file_is_missing_is_a_config_error_naming_both(
        tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    url = f"amqps://mq.example:5671/exgate?ssl_options={{'ca_certs':'{missing}'}}"
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, url))
    assert str(caught.value) == (f"{tmp_path / 'agent.toml'}: key 'broker.url' cannot be "
                                 f"used: a file its ssl_options names does not exist: {missing}")
    assert f"配置项 'broker.url' 无法使用：ssl_options 指定的文件不存在：{missing}" in \
        caught.value.message("zh")
    # Built from a URL given otherwise (a reread credentials file), it stops there too.
    with pytest.raises(ConfigError, match="does not exist"):
        LinkSettings(url, "n1")
    # The form the example shows loads once the CA file is there.
    missing.write_bytes(self_signed_pem())
    config = load_config(write(tmp_path, url))
    assert config.broker is not None
    assert LinkSettings(config.broker.url, "n1").parameters().ssl_options is not None


@pytest.mark.parametrize("url", ["amqps://mq.example:5671/exgate",
                                 "amqp://node-1:s3cret@127.0.0.1:5672/%2F"])
def test_broker_urls_that_open(tmp_path: Path, url: str) -> None:
    config = load_config(write(tmp_path, url))
    assert config.broker is not None and "s3cret" not in repr(config)


@pytest.mark.parametrize(("written", "resolved"), [
    ("sqlite:///front.db", "sqlite:///{conf}/front.db"),
    ("sqlite:///data/front.db?timeout=5", "sqlite:///{conf}/data/front.db?timeout=5"),
    ("sqlite:////srv/front.db", "sqlite:////srv/front.db"),
    ("sqlite://", "sqlite://"),
    # The URI form: SQLite reads the file: name itself; rewritten, it named a new file.
    ("sqlite:///file:front.db?mode=ro&uri=true", "sqlite:///file:front.db?mode=ro&uri=true"),
    ("postgresql://exgate:pw@db/front", "postgresql://exgate:pw@db/front"),
    ("not a url", "not a url"),  # the source says what is wrong with it, naming itself
])
def test_a_relative_sqlite_source_lies_beside_the_config_not_in_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, written: str, resolved: str) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    path = conf / "agent.toml"
    path.write_text('[node]\nid = "n1"\ndivision = "430102"\n[outbox]\npath = "o.db"\n'
                    f'[[sources]]\nkind = "db"\nname = "front"\nurl = "{written}"\n'
                    'oracle_client_lib = "instantclient"\n', encoding="utf-8")
    monkeypatch.chdir("/")  # as under systemd
    config = load_config(path)
    [source] = config.sources
    assert source.options["url"] == resolved.format(conf=conf)
    assert source.options["oracle_client_lib"] == str(conf / "instantclient")
    assert config.outbox.path == conf / "o.db"


def test_a_database_password_comes_from_its_file_resolved_beside_the_config(
        tmp_path: Path) -> None:
    (tmp_path / "front.password").write_text("p@ss:w/rd\n", encoding="utf-8")
    path = tmp_path / "agent.toml"
    path.write_text('[node]\nid = "n1"\ndivision = "430102"\n[outbox]\npath = "o.db"\n'
                    '[[sources]]\nkind = "db"\nname = "front"\n'
                    'url = "postgresql://exgate@127.0.0.1/front"\n'
                    'password_file = "front.password"\n', encoding="utf-8")
    [source] = load_config(path).sources
    url = source_url(parse_options(source.options, load_catalog()))
    assert (url.username, url.password) == ("exgate", "p@ss:w/rd")
    assert "p@ss" not in url.render_as_string(hide_password=True)
    (tmp_path / "front.password").unlink()
    with pytest.raises(ConfigError, match="password_file"):
        source_url(parse_options(source.options, load_catalog()))


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e308", "1000000001"])
def test_numbers_that_are_no_setting_are_config_errors(tmp_path: Path, value: str) -> None:
    """Out of range, not a traceback later: a budget of 1e308 MB overflowed an int, a
    poll of 1e10 s a thread's wait; systemd restarts a traceback, never a config error."""
    text = EXAMPLE.read_text(encoding="utf-8")
    budget = tmp_path / "budget.toml"
    budget.write_text(text.replace("disk_budget_mb = 2048", f"disk_budget_mb = {value}"),
                      encoding="utf-8")
    with pytest.raises(ConfigError, match=r"outbox\.disk_budget_mb"):
        load_config(budget)
    folder = load_config(EXAMPLE).sources[-1]
    assert folder.kind == "folder"
    with pytest.raises(ConfigError, match="stable_seconds"):
        FolderOptions.parse({**folder.options, "stable_seconds": float(value)})
    poll = tmp_path / "poll.toml"
    poll.write_text(text.replace("poll_seconds = 1", f"poll_seconds = {value}"),
                    encoding="utf-8")
    with pytest.raises(ConfigError, match=r"agent\.poll_seconds"):
        load_config(poll)
    with pytest.raises(ConfigError, match="cursor_safety_lag_seconds"):
        parse_options({"url": "sqlite://", "strategy": "cursor",
                       "cursor_safety_lag_seconds": float(value)}, load_catalog())


def test_the_commented_database_keys_and_mapping_of_the_example_are_real(
        tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace('strategy = "flag"',
                                                       'strategy = "cursor"')
    for key in ("cursor_null_scan_seconds", "cursor_safety_lag_seconds",
                "changelog_gap_wait_seconds", "page_size"):
        assert f"# {key} = " in text
        text = text.replace(f"# {key} = ", f"{key} = ")
    for line in ("[sources.mapping.SBXX]", 'table = "LEGACY_APPLY"', "columns = {", "key = [",
                 'timestamp = "UPD_TIME"'):
        assert f"# {line}" in text
        text = text.replace(f"# {line}", line)
    path = tmp_path / "agent.toml"
    path.write_text(text, encoding="utf-8")
    database = parse_options({s.kind: s.options for s in load_config(path).sources}["db"],
                             load_catalog())
    assert (database.cursor_safety_lag_seconds, database.page_size) == (60, 2000)
    mapped = database.mapping["SBXX"]
    assert (mapped.table, mapped.timestamp, mapped.key) == ("LEGACY_APPLY", "UPD_TIME",
                                                           ("APPLY_NO", "VERSION"))
    assert mapped.columns["SBLSH"] == "APPLY_NO"


def test_a_password_written_unencoded_in_the_broker_url_is_refused_without_a_word_of_it(
        tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "amqp://node-1:s3cr/et＠@mq.example:5672/exgate"))
    said = str(caught.value) + caught.value.message("zh")
    assert "key 'broker.url' cannot be used: its password holds an unencoded" in said
    assert "s3cr" not in said


def test_an_empty_broker_table_is_an_error_not_an_agent_that_never_sends(
        tmp_path: Path) -> None:
    path = write(tmp_path, "amqps://mq.example:5671/exgate")
    path.write_text(path.read_text(encoding="utf-8").replace(
        'url = "amqps://mq.example:5671/exgate"\n', ""), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broker\.url"):
        load_config(path)
    path.write_text(path.read_text(encoding="utf-8").replace("[broker]\n", ""),
                    encoding="utf-8")
    assert load_config(path).broker is None  # no [broker] at all: journal only


def test_a_config_saved_by_notepad_with_a_bom_loads_and_a_gbk_one_says_save_as_utf8(
        tmp_path: Path) -> None:
    path = write(tmp_path, "amqps://mq.example:5671/exgate")
    text = path.read_text(encoding="utf-8") + '# 前置机代理\n'
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert load_config(path).node.id == "n1"
    path.write_bytes(text.encode("gb18030"))
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert "not UTF-8 (byte" in str(refused.value) and "save the file as UTF-8" in str(
        refused.value)
    assert "请将文件另存为 UTF-8 编码" in refused.value.message("zh")


def test_relative_ssl_files_of_the_broker_url_lie_beside_the_config(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # They were taken from the working directory: "/" under systemd.
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls" / "ca.pem").write_bytes(self_signed_pem())
    url = ("amqps://mq.example:5671/exgate?heartbeat=30"
           "&ssl_options={'ca_certs':'tls/ca.pem','server_hostname':'mq.example'}")
    monkeypatch.chdir("/")
    config = load_config(write(tmp_path, url))
    assert config.broker is not None
    parameters = LinkSettings(config.broker.url, "n1").parameters()
    assert parameters.ssl_options is not None and parameters.heartbeat == 30
    assert f"'ca_certs': '{tmp_path / 'tls' / 'ca.pem'}'" in unquote(config.broker.url)
    assert "'server_hostname': 'mq.example'" in unquote(config.broker.url)


def test_an_integer_past_a_floats_range_is_a_config_error_not_a_traceback(
        tmp_path: Path) -> None:
    path = write(tmp_path, "amqps://mq.example:5671/exgate")
    path.write_text(path.read_text(encoding="utf-8") + f"[agent]\npoll_seconds = {10**400}\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError, match=r"agent\.poll_seconds.*1,000,000,000"):
        load_config(path)

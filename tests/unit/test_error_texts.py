"""Configuration errors speak Chinese by default and English with ``--lang en``.

A ``ConfigError`` stops a command, and an operator reads it at the CLI inside Chinese
output; ``str(error)`` stays English for logs and JSON. The guard below reads the source
and names every ``ConfigError`` built without its Chinese text; the behavioural tests
run real commands on broken configs, through the sites that wrap an inner error with
its context.
"""

from __future__ import annotations

import ast
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapters.sealing import load_node_keys
from cli import main
from gateway.config import load_config as load_gateway_config
from schemas.errors import ConfigError, ExgateError, located, message_of, wrapped
from tests.unit.frontend_machine.test_run_once import write_config as agent_config
from tests.unit.gateway.test_replay import write_config as gateway_config

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("gateway", "adapters", "frontend_machine", "schemas", "cli.py")
SKIPPED = ("adapters/stores/migrations/",)
ROOT_ERROR = "ConfigError"


# -- the guard ---------------------------------------------------------------------------


def source_files() -> dict[str, ast.Module]:
    paths = [ROOT / name for name in SOURCES if name.endswith(".py")]
    for package in (name for name in SOURCES if not name.endswith(".py")):
        paths += sorted((ROOT / package).rglob("*.py"))
    trees = {}
    for path in paths:
        name = path.relative_to(ROOT).as_posix()
        if not name.startswith(SKIPPED):
            trees[name] = ast.parse(path.read_text(encoding="utf-8"), name)
    return trees


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else None


def _is_chinese(name: str | None) -> bool:
    return name is not None and (name == "zh" or name.endswith("_zh"))


def _init_speaks_chinese(init: ast.FunctionDef) -> bool:
    """The class's constructor takes a required Chinese text, or passes its own up."""
    args = init.args
    positional = [*args.posonlyargs, *args.args]
    required = positional[:len(positional) - len(args.defaults)]
    required += [a for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is None]
    if any(_is_chinese(arg.arg) for arg in required):
        return True
    return any(isinstance(call, ast.Call) and _name(call.func) == "__init__"
               and any(_is_chinese(k.arg) for k in call.keywords)
               for call in ast.walk(init))


def config_error_classes(trees: dict[str, ast.Module]) -> dict[str, bool]:
    """Every ConfigError class by name → whether it brings its Chinese text itself."""
    classes = {ROOT_ERROR: False}
    defined = [node for tree in trees.values() for node in ast.walk(tree)
               if isinstance(node, ast.ClassDef)]
    grown = True
    while grown:
        grown = False
        for node in defined:
            bases = [b for b in map(_name, node.bases) if b in classes]
            if node.name in classes or not bases:
                continue
            init = next((item for item in node.body if isinstance(item, ast.FunctionDef)
                         and item.name == "__init__"), None)
            classes[node.name] = (_init_speaks_chinese(init) if init is not None
                                  else classes[bases[0]])
            grown = True
    return classes


def untranslated(tree: ast.Module, classes: dict[str, bool]) -> list[int]:
    """Lines that build (or raise) a ConfigError without its Chinese text."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and classes.get(_name(node.func) or "") is False:
            zh = next((k.value for k in node.keywords if k.arg == "zh"), None)
            if zh is None or (isinstance(zh, ast.Constant) and zh.value is None):
                lines.append(node.lineno)
        elif isinstance(node, ast.Raise) and node.exc is not None \
                and not isinstance(node.exc, ast.Call) and _name(node.exc) in classes:
            lines.append(node.lineno)
    return sorted(lines)


def test_every_config_error_carries_its_chinese_text() -> None:
    trees = source_files()
    classes = config_error_classes(trees)
    assert {"FileNotThere", "ListenError", "EntryError", "CredentialsRefused"} <= set(classes)
    missing = [f"{name}:{line}" for name, tree in trees.items()
               for line in untranslated(tree, classes)]
    assert missing == [], "ConfigError without zh= (see schemas.errors.located / wrapped)"


def parsed(source: str) -> list[int]:
    tree = ast.parse(source)
    return untranslated(tree, config_error_classes({"example.py": tree}))


def test_the_guard_finds_what_it_should() -> None:
    assert parsed('raise ConfigError("bad")\n') == [1]
    assert parsed('raise ConfigError\n') == [1]
    assert parsed('e = errors.ConfigError("bad", zh=None)\n') == [1]
    assert parsed('raise ConfigError("bad", zh="坏")\n') == []
    assert parsed('raise located("k", "bad", "坏")\n') == []
    subclass = "class Taken(ConfigError):\n    pass\n\nraise Taken('x')\nraise Taken('x', zh='y')\n"
    assert parsed(subclass) == [4]
    own = ("class Gone(ConfigError):\n    def __init__(self, path, *, what_zh):\n"
           "        super().__init__(path, zh=what_zh)\n\n"
           "class Lost(Gone):\n    def __init__(self, path):\n"
           "        super().__init__(path, what_zh='库')\n\nraise Lost('p')\nraise Gone('p', what_zh='x')\n")
    assert parsed(own) == []


# -- the helpers ---------------------------------------------------------------------------


def test_a_wrapped_error_keeps_its_chinese() -> None:
    inner = located("[broker] url", "must start with amqp://", "必须以 amqp:// 开头")
    outer = wrapped("/etc/exgate/gateway.toml", inner)
    assert str(outer) == "/etc/exgate/gateway.toml: [broker] url: must start with amqp://"
    assert outer.message("zh") == "/etc/exgate/gateway.toml：[broker] url：必须以 amqp:// 开头"
    assert outer.message("en") == str(outer)
    foreign = wrapped("node n1", OSError("disk full"), where_zh="节点 n1")
    assert foreign.message("zh") == "节点 n1：disk full" and str(foreign) == "node n1: disk full"
    assert message_of(ValueError("plain"), "zh") == "plain"


# -- the commands ---------------------------------------------------------------------------


@dataclass
class Ran:
    code: int
    output: str


def run(*args: object) -> Ran:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return Ran(result.exit_code, result.output)


def both(*args: object) -> tuple[Ran, Ran]:
    """The command in its default language and with ``--lang en``."""
    return run(*args), run(*args, "--lang", "en")


def test_a_bad_agent_config_is_reported_in_chinese_or_english(tmp_path: Path) -> None:
    config = agent_config(tmp_path)
    config.write_text(config.read_text(encoding="utf-8").replace("[outbox]", "[outbox.x]"),
                      encoding="utf-8")
    zh, en = both("agent", "once", "-c", config)
    assert zh.code == en.code == 2
    assert f"配置错误：{config}：配置项 'outbox.x' 在此处无效（可用：" in zh.output
    assert f"configuration error: {config}: key 'outbox.x' is not known here" in en.output
    assert "is not known" not in zh.output and "配置" not in en.output


def test_the_agent_config_may_ask_for_english_even_when_it_fails(tmp_path: Path) -> None:
    config = agent_config(tmp_path)
    text = config.read_text(encoding="utf-8").replace('division = "430102"', 'division = "43"')
    config.write_text(text + '[agent]\nlang = "en"\n', encoding="utf-8")
    ran = run("agent", "once", "-c", config)
    assert ran.code == 2
    assert f"configuration error: {config}: key 'node.division' is '43', not a 6-digit " \
           "GB/T 2260 code" in ran.output
    assert "配置" not in run("agent", "once", "-c", config, "--lang", "en").output
    assert "配置项 'node.division' 为 '43'，不是 6 位 GB/T 2260 行政区划代码" in run(
        "agent", "once", "-c", config, "--lang", "zh").output


def test_a_bad_source_keeps_its_chinese_through_the_agent(tmp_path: Path) -> None:
    config = agent_config(tmp_path)
    config.write_text(config.read_text(encoding="utf-8").replace(
        'observer = "none"', 'observer = "inotify"'), encoding="utf-8")
    zh, en = both("agent", "once", "-c", config)
    assert zh.code == en.code == 2
    assert (f"配置错误：{config}：[[sources]] 'drop'：配置项 'observer' 为 'inotify'；"
            "请使用以下之一：native, polling, none") in zh.output
    assert (f"configuration error: {config}: [[sources]] 'drop': key 'observer' is "
            "'inotify'; use one of native, polling, none") in en.output


def test_a_mistyped_drop_folder_stops_the_agent_naming_the_source_and_the_path(
        tmp_path: Path) -> None:
    config = agent_config(tmp_path)
    config.write_text(config.read_text(encoding="utf-8").replace('path = "drop"',
                                                                 'path = "dorp"'),
                      encoding="utf-8")
    zh, en = both("agent", "once", "-c", config)
    assert zh.code == en.code == 2
    assert (f"配置错误：{config}：[[sources]] 'drop'：配置项 'path'：投递目录 "
            f"{tmp_path / 'dorp'} 不存在；请创建该目录") in zh.output
    assert (f"configuration error: {config}: [[sources]] 'drop': key 'path': the drop "
            f"folder {tmp_path / 'dorp'} does not exist; create it") in en.output
    assert not (tmp_path / "dorp").exists()


def test_a_bad_source_keeps_its_chinese_through_agent_replay(tmp_path: Path) -> None:
    config = agent_config(tmp_path)
    assert run("agent", "once", "-c", config).code == 0  # creates the outbox
    config.write_text(config.read_text(encoding="utf-8")
                      + '[[sources]]\nkind = "db"\nname = "legacy"\nurl = "sqlite://"\n'
                        'strategy = "bogus"\n', encoding="utf-8")
    zh, en = both("agent", "replay", "--rejects", "-c", config)
    assert zh.code == en.code == 2
    assert (f"✗ 数据源 legacy: 配置错误：{config}：[[sources]] 'legacy'：'strategy' 为 "
            "'bogus'；请使用以下之一：flag, changelog, cursor") in zh.output
    assert (f"✗ source legacy: configuration error: {config}: [[sources]] 'legacy': "
            "'strategy' is 'bogus'; use one of flag, changelog, cursor") in en.output


@pytest.mark.parametrize("command", [["status"], ["batches", "list"],
                                     ["export", "--out", "OUT"]])
def test_a_bad_gateway_config_is_reported_in_chinese_or_english(
        tmp_path: Path, command: list[str]) -> None:
    config = gateway_config(tmp_path, f"sqlite:///{tmp_path / 'store.db'}",
                            tmp_path / "registry", division="4301")
    command = [str(tmp_path / "out") if part == "OUT" else part for part in command]
    zh, en = both(*command, "-c", config)
    assert zh.code == en.code == 2
    assert f"{config}：[level] division = '4301' 不是 6 位 GB/T 2260 行政区划代码，前两位须为省级代码" in zh.output
    assert f"{config}: [level] division = '4301' is not a 6-digit GB/T 2260 code whose first two digits are a province" in en.output
    assert not (tmp_path / "out").exists()


def test_a_store_without_exgate_s_tables_is_reported_with_a_hint_in_either_language(
        tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    sqlite3.connect(store).close()  # a database, but never migrated by a gateway
    config = gateway_config(tmp_path, f"sqlite:///{store}", tmp_path / "registry")
    zh, en = both("status", "-c", config)
    assert zh.code == en.code == 1
    assert "（此监察库是否已由 `exgate gateway run` 建好表？）" in zh.output
    assert "(has `exgate gateway run` migrated this store?)" in en.output


def test_a_wrapped_gateway_setting_keeps_its_chinese(tmp_path: Path) -> None:
    config = gateway_config(tmp_path, f"sqlite:///{tmp_path / 'store.db'}", tmp_path / "r")
    config.write_text(config.read_text(encoding="utf-8") + '[dashboard]\nlisten = "here"\n',
                      encoding="utf-8")
    with pytest.raises(ConfigError) as failed:
        load_gateway_config(config)
    assert str(failed.value) == (f"{config}: [dashboard] listen = 'here': expected host:port "
                                 "such as 127.0.0.1:8430, or a port")
    assert failed.value.message("zh") == (f"{config}：[dashboard] listen = 'here'：应为 "
                                          "host:port（例如 127.0.0.1:8430）或端口号")
    zh, en = both("batches", "list", "-c", config)
    assert "错误：" in zh.output and "应为 host:port" in zh.output
    assert "error: " in en.output and "expected host:port" in en.output


def test_a_bad_key_file_names_itself_in_both_languages(tmp_path: Path) -> None:
    keys = tmp_path / "n1.key"
    keys.write_text('node_id = "n1"\nkey_version = 1\nsigning_key = "%%"\ndek = "x"\n',
                    encoding="utf-8")
    os.chmod(keys, 0o600)
    with pytest.raises(ConfigError) as failed:
        load_node_keys(keys)
    assert str(failed.value) == f"{keys}: signing_key is not valid base64"
    assert failed.value.message("zh") == f"{keys}：signing_key 不是有效的 base64"
    os.chmod(keys, 0o644)
    with pytest.raises(ConfigError) as failed:
        load_node_keys(keys)
    assert failed.value.message("zh") == (f"{keys}：密钥文件可被他人读取（权限 644）；"
                                          f"请运行 `chmod 600 {keys}`")


def test_frontdb_init_and_broker_link_speak_the_chosen_language() -> None:
    zh, en = both("frontdb", "init", "--url", "nosuch://x", "--sql")
    assert zh.code == en.code == 2
    assert "exgate frontdb init: 未知的数据库方言 'nosuch'；请使用以下之一：" in zh.output
    assert "exgate frontdb init: unknown database dialect 'nosuch'; use one of" in en.output
    zh, en = both("broker", "link", "--upstream", "http://mq:5672/", "--division", "430102",
                  "--admin-url", "http://admin@127.0.0.1:1")
    assert zh.code == en.code == 2
    assert "错误：--upstream 'http://mq:5672/' 应形如 amqp://USER@HOST:PORT/VHOST" in zh.output
    assert "error: --upstream 'http://mq:5672/' must look like amqp://" in en.output


def test_message_falls_back_to_english_without_chinese() -> None:
    assert ExgateError("only English").message("zh") == "only English"


def test_an_outbox_the_agent_cannot_create_is_named_without_a_traceback(tmp_path: Path) -> None:
    config = agent_config(tmp_path)
    (tmp_path / "blocker").write_text("a file where the outbox's folder should be")
    config.write_text(config.read_text(encoding="utf-8").replace(
        'path = "outbox.db"', 'path = "blocker/outbox.db"'), encoding="utf-8")
    zh, en = both("agent", "once", "-c", config)
    assert zh.code == en.code == 2  # a config error: a restart would fail alike
    assert "无法打开发件箱" in zh.output and "请检查 [outbox] path" in zh.output
    assert "cannot open outbox" in en.output and "check [outbox] path" in en.output
    assert "Traceback" not in zh.output + en.output


def test_a_store_that_does_not_answer_is_reported_in_chinese(tmp_path: Path) -> None:
    config = gateway_config(tmp_path, "postgresql+psycopg://exgate:s3cret@127.0.0.1:1/store",
                            tmp_path / "registry")
    zh, en = both("status", "-c", config)
    assert zh.code == en.code == 1
    assert "监察库 postgresql+psycopg://exgate:***@127.0.0.1:1/store 暂时无法访问" in zh.output
    assert "cannot read the sync status at" in en.output
    assert "s3cret" not in zh.output + en.output

"""A folder option (``--registry``, ``--base``, ``--broker-base``) or the folder of
``exgate audit verify`` that names a file, a folder the operator's user may not read, or
nothing, is named with why in exgate's words (Chinese by default, ``--lang en``) and
exit code 2: click refused the first two in English before exgate saw them, and let a
file through as a registry that ``node list`` called empty."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapters.sealing import generate_node_keys
from cli import main
from gateway.registry import Registry

# Each command with the option under test last, its value appended by the test.
REGISTRY_COMMANDS = [
    ["node", "list"], ["node", "add", "new-01", "--division", "430102"],
    ["node", "disable", "furong-01"], ["node", "enable", "furong-01"],
    ["node", "rotate-key", "furong-01"], ["node", "retire-key", "furong-01", "--version", "1"],
]
BASE_COMMANDS = [
    ["broker", "start"], ["broker", "stop"], ["broker", "status"],
    ["broker", "link", "--upstream", "amqp://link:pw@county-mq:5672/%2F",
     "--division", "430102"],
]
BROKER_BASE_COMMANDS = [
    ["node", "add", "new-01", "--division", "430102"],
    ["node", "disable", "furong-01"], ["node", "enable", "furong-01"],
]
CASES = [("--registry", c) for c in REGISTRY_COMMANDS] + \
    [("--base", c) for c in BASE_COMMANDS] + [("--broker-base", c) for c in BROKER_BASE_COMMANDS]
WHY = {"file": ("不是文件夹", "is not a folder"),
       "unreadable": ("无法读取：没有读取权限", "cannot be read: Permission denied")}


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # node add's default --out, ID.key, lands here
    monkeypatch.setenv("EXGATE_BROKER_BASE", str(tmp_path / "no-broker"))
    reg = Registry(tmp_path / "registry")
    reg.add("furong-01", "430102", "exgate-node-furong-01",
            generate_node_keys("furong-01", 1).verifier())
    return reg.path


@pytest.fixture
def bad_folder(request: pytest.FixtureRequest, tmp_path: Path,
               deny: Callable[[Path], None]) -> tuple[Path, str]:
    kind: str = request.param
    path = tmp_path / kind
    if kind == "file":
        path.write_text("not a folder\n", encoding="utf-8")
    else:
        path.mkdir()
        deny(path)
    return path, kind


def _invoke(registry: Path, option: str, command: list[str], value: Path,
            lang: str) -> tuple[int, str]:
    args = [*command, option, str(value), "--lang", lang]
    if option != "--registry" and command[0] == "node":
        args += ["--registry", str(registry)]
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.output


@pytest.mark.parametrize("bad_folder", ["file", "unreadable"], indirect=True)
@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize(("option", "command"), CASES)
def test_a_folder_option_that_is_no_readable_folder_is_named_with_why(
        registry: Path, bad_folder: tuple[Path, str], lang: str, option: str,
        command: list[str]) -> None:
    path, kind = bad_folder
    before = sorted(p.name for p in registry.iterdir())
    code, output = _invoke(registry, option, command, path, lang)
    assert code == 2, output
    assert "Invalid value" not in output
    zh, en = WHY[kind]
    expected = f"错误：{option} {path}：{zh}" if lang == "zh" else f"error: {option} {path}: {en}"
    assert expected in output
    assert sorted(p.name for p in registry.iterdir()) == before
    assert not Path("new-01.key").exists()


@pytest.mark.parametrize("command", REGISTRY_COMMANDS[2:])
def test_a_registry_not_there_is_named_by_every_command_but_add(
        tmp_path: Path, command: list[str]) -> None:
    """disable, enable, rotate-key and retire-key said the node was not registered in it."""
    typo = tmp_path / "regsitry"
    result = CliRunner().invoke(main, [*command, "--registry", str(typo), "--lang", "en"])
    assert result.exit_code == 2
    assert f"node registry {typo} does not exist: check --registry" in result.output
    assert not typo.exists()


def test_node_add_still_makes_a_registry_not_there(registry: Path, tmp_path: Path) -> None:
    """The missing registry passes the check: the command goes on to the broker."""
    result = CliRunner().invoke(main, ["node", "add", "new-01", "--division", "430102",
                                       "--registry", str(tmp_path / "new-registry")])
    assert result.exit_code == 2
    assert f"{tmp_path / 'no-broker'} 中没有私有消息服务器" in result.output
    assert "--registry" not in result.output


def test_a_broker_folder_not_there_is_still_named_as_having_no_broker(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-broker"
    result = CliRunner().invoke(main, ["broker", "status", "--base", str(missing)])
    assert result.exit_code == 2
    assert f"{missing} 中没有私有消息服务器" in result.output


@pytest.mark.parametrize("bad_folder", ["file", "unreadable"], indirect=True)
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_audit_verify_names_a_folder_it_cannot_read(bad_folder: tuple[Path, str],
                                                     lang: str) -> None:
    path, kind = bad_folder
    result = CliRunner().invoke(main, ["audit", "verify", str(path), "--lang", lang])
    assert result.exit_code == 2
    zh, en = WHY[kind]
    assert (f"导出目录 {path}：{zh}" if lang == "zh" else f"export folder {path}: {en}") \
        in result.output
    assert "Invalid value" not in result.output


@pytest.mark.parametrize(("lang", "words"), [("zh", "导出目录 {}：不存在"),
                                             ("en", "export folder {}: does not exist")])
def test_audit_verify_of_a_folder_not_there_says_so(tmp_path: Path, lang: str,
                                                    words: str) -> None:
    """It said "not a folder", as of a file."""
    missing = tmp_path / "audit-2026-11"
    result = CliRunner().invoke(main, ["audit", "verify", str(missing), "--lang", lang])
    assert result.exit_code == 2
    assert words.format(missing) in result.output


@pytest.mark.parametrize("command", [["broker", "start"], ["broker", "status"]])
def test_a_default_broker_folder_that_is_a_file_is_named_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]) -> None:
    base = tmp_path / "broker"
    base.write_text("not a folder\n", encoding="utf-8")
    monkeypatch.setenv("EXGATE_BROKER_BASE", str(base))
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 2, result.output
    assert f"消息服务器目录 {base}：不是文件夹" in result.stderr

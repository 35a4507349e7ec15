"""The README, docs/architecture.md and the Makefile tell the truth about the checkout."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "adapters", "frontend_machine", "gateway")


def test_the_readme_opens_with_make_demo_and_make_test() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = readme.split("```")[1]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()[1:]]
    assert [c for c in commands if c] == ["make demo", "make test"]


def test_the_architecture_names_every_module() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    named = {token.strip() for span in re.findall(r"`([^`]+)`", prose)
             for token in span.split(",")}
    missing = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*")):
            if path.suffix not in (".py", ".xsd") or path.name == "__init__.py":
                continue
            inner = path.relative_to(ROOT / package)
            folders = {f"{name}/" for folder in inner.parents if folder.name
                       for name in (folder.as_posix(), folder.name)}
            if not {inner.as_posix(), path.name, *folders} & named:
                missing.append(f"{package}/{inner.as_posix()}")
    assert missing == []


def test_make_installs_what_a_fresh_debian_needs_for_the_venv() -> None:
    # Debian's python3 has no ensurepip: `python3 -m venv` fails without python3-venv.
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    [packages] = re.findall(r"^DEB_PACKAGES\s*:=(.*)$", makefile, re.M)
    assert "python3-venv" in packages.split()

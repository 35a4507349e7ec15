"""The ``exgate`` command line: parses arguments and calls one function per command.

No logic lives here: each command hands over to the package that owns the work.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

LANG_OPTION = click.option(
    "--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True,
    help="Language of reports / 报告语言",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="exgate")
def main() -> None:
    """exgate: inter-level data exchange gateway for electronic supervision (电子监察)."""


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "output", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="text: file:line:col: ELEMENT/FIELD: message; json: one object")
@click.option("--schema-version", type=int, default=None,
              help="Require this schema version (default: any version the gateway knows)")
@click.option("--max-file-mb", type=int, default=4096, show_default=True, help="Size cap per file")
@LANG_OPTION
def validate(paths: tuple[Path, ...], output: str, schema_version: int | None,
             max_file_mb: int, lang: str) -> None:
    """Validate exchange XML files or folders (recursive) against the XSD and the rules.

    \b
    Example:
      exgate validate inbox/ export/2026-11.xml --format json
    Exit codes: 0 all valid, 1 any invalid, 2 usage error or unreadable path.
    """
    from schemas.validate_command import run_validate

    sys.exit(run_validate(paths, output, schema_version, max_file_mb, lang))


if __name__ == "__main__":
    main()

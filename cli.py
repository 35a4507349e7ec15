"""The ``exgate`` command line: parses arguments and calls one function per command.

No logic lives here: each command hands over to the package that owns the work.
"""

from __future__ import annotations

import click

LANG_OPTION = click.option(
    "--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True,
    help="Language of reports / 报告语言",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="exgate")
def main() -> None:
    """exgate: inter-level data exchange gateway for electronic supervision (电子监察)."""


if __name__ == "__main__":
    main()

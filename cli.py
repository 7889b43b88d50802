"""sim2real command line: one click group; each stage registers its commands from its own package.

    python cli.py --help        (or, once installed, `sim2real --help`)
"""
from __future__ import annotations

import importlib
import sys

import click

from core.io import UserError

# (module, attribute) of each stage's click commands; a stage that is not importable is skipped with a
# note in --help rather than breaking the whole CLI.
STAGE_COMMANDS = [
    ("render.commands", "COMMANDS"),
    ("eval.commands", "COMMANDS"),
    ("pose_model.commands", "COMMANDS"),
    ("render.randomization_grid", "COMMANDS"),
    ("refiner.commands", "COMMANDS"),
    ("benchmark.commands", "COMMANDS"),
]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="sim2real", message="sim2real %(version)s")
def cli() -> None:
    """Train a cube pose estimator on synthetic images and find out which sim-to-real method
    (none, domain randomization, ADR, SimGAN refinement) works best on your real photos."""


for _module, _attr in STAGE_COMMANDS:
    try:
        _mod = importlib.import_module(_module)
    except ModuleNotFoundError as _e:
        if _e.name != _module:  # a real missing dependency inside the stage: surface it
            raise
        continue
    for _cmd in getattr(_mod, _attr):
        cli.add_command(_cmd)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user mistakes (and OS errors such as a read-only or full disk) print one line naming the
    file or option and exit 2; Ctrl-C exits 130 without a traceback."""
    try:
        cli.main(args=argv, prog_name="sim2real", standalone_mode=False)
    except UserError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as e:  # a bare group: its help, as click prints it
        e.show()
        sys.exit(e.exit_code)
    except click.ClickException as e:  # bad option values: one line naming the option, like a UserError
        click.echo(f"error: {e.format_message()}", err=True)
        sys.exit(e.exit_code)
    except OSError as e:  # read-only or full disk, permissions, …: one line naming the path
        where = e.filename if e.filename is not None else "I/O"
        click.echo(f"error: {where}: {e.strerror or e}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()

"""The `bench` command group: its help, its version, and how errors end a command (one line on
stderr, exit code 2). The verbs attach themselves to `main` in their own modules."""
from __future__ import annotations

import sys

import click

from accelbench import __version__
from accelbench.errors import AccelbenchError


class Cli(click.Group):
    """Turns accelbench's own errors and click's usage errors into one line on stderr
    (`bench: error: ...`) and exit code 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                                standalone_mode=False, **extra)
        except (AccelbenchError, click.UsageError) as exc:
            message = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
            click.echo(f"bench: error: {' '.join(message.split())}", err=True)
            sys.exit(2)
        except click.ClickException as exc:  # e.g. a file that cannot be opened
            click.echo(f"bench: error: {' '.join(exc.format_message().split())}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("bench: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="accelbench")
def main() -> None:
    """accelbench: accelerator benchmarks with checked results, energy and HTML reports.

    Start with `bench env` to see which backends this machine has, `bench list` for the
    benchmarks and their cases, then `bench run`.
    """

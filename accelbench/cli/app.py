"""The `bench` command group: its help, its version, and how errors end a command (one line on
stderr, exit code 2; Ctrl-C: one line, exit code 130).

The verbs live in their own modules and are imported only when named: `bench --help`, a typo or
`bench report` never import torch (a 2-core machine spends 2-3 s on that import). The one-line
summaries `bench --help` prints are therefore kept here; a test checks each against its command."""
from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass

import click

from accelbench import __version__
from accelbench.errors import INTERRUPTED_EXIT, AccelbenchError


@dataclass(frozen=True)
class Verb:
    module: str  # importing it registers the command on `main`
    summary: str  # how its help begins, for `bench --help` (a test keeps the two alike)


VERBS = {
    "compare": Verb("accelbench.cli.results", "Compare BASELINE CANDIDATE (two run folders) case by case"),
    "convert-gguf": Verb("accelbench.cli.checkpoint", "Convert a GGUF file (Llama architecture) into a checkpoint folder for --weights"),
    "doctor": Verb("accelbench.cli.inspect", "Self-check a backend before the first run"),
    "env": Verb("accelbench.cli.inspect", "Backends found on this machine, the device, its peaks, telemetry and versions"),
    "export": Verb("accelbench.cli.results", "Write runs in another tool's format"),
    "fleet": Verb("accelbench.cli.fleet", "Run the acceptance selection on every device of this node at once and judge each"),
    "history": Verb("accelbench.cli.results", "Trends over every run under DIRS"),
    "list": Verb("accelbench.cli.inspect", "List benchmarks and how many cases each suite has (or a suite's cases)"),
    "report": Verb("accelbench.cli.results", "Render run folders into one report"),
    "run": Verb("accelbench.cli.run", "Run benchmarks and write results/<run_id>/"),
}


def interrupted() -> None:
    click.echo("bench: interrupted", err=True)
    sys.exit(INTERRUPTED_EXIT)


class Cli(click.Group):
    """Loads a verb's module when the verb is named, and turns accelbench's own errors and click's
    usage errors into one line on stderr (`bench: error: ...`) and exit code 2."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(VERBS)

    def get_command(self, ctx: click.Context, name: str):
        if name in VERBS and name not in self.commands:
            importlib.import_module(VERBS[name].module)
        return self.commands.get(name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, VERBS[name].summary) for name in self.list_commands(ctx)])

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
        except (click.Abort, KeyboardInterrupt):  # click turns Ctrl-C inside a command into Abort
            interrupted()
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="accelbench")
def main() -> None:
    """accelbench: accelerator benchmarks with checked results, energy and HTML reports.

    Start with `bench env` to see which backends this machine has, `bench list` for the
    benchmarks and their cases, then `bench run`.
    """

"""Where the CLI's messages go: standard error, so a command's output (a table, Markdown, JSON)
can be piped while progress and warnings still reach the terminal."""
from rich.console import Console

console = Console(stderr=True)

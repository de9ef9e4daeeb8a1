"""`bench`: run benchmarks, list them, show the environment, render reports. app.py is the command
group, which imports a verb's module only when the verb is named; one module per group of verbs:
run.py (`run`), inspect.py (`list`, `env`, `doctor`), results.py (`report`, `compare`, `history`,
`export`); summary.py prints a finished run's tables.

Exit codes: 0 all cases passed; 1 some case failed; 2 bad usage, a missing backend or an
unreadable results file; 130 interrupted (Ctrl-C or SIGTERM; a run keeps its finished cases).
"""
from accelbench.cli.app import main

__all__ = ["main"]

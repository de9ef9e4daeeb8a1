"""`bench`: run benchmarks, list them, show the environment, render reports. app.py is the command
group; one module per group of verbs: run.py (`run`), inspect.py (`list`, `env`, `doctor`),
results.py (`report`, `compare`, `history`, `export`); summary.py prints a finished run's tables.

Exit codes: 0 all cases passed; 1 some case failed (or the run was interrupted); 2 bad usage,
a missing backend or an unreadable results file.
"""
from accelbench.cli import inspect, results, run  # noqa: F401  (each registers its verbs on `main`)
from accelbench.cli.app import main

__all__ = ["main"]

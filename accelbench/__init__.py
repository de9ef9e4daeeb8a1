"""accelbench: accelerator benchmarks whose figures are checked, comparable and traceable."""

__version__ = "0.1.0"
SCHEMA_VERSION = 1  # how the run files are laid out
# How the figures are measured (docs/method.md lists each version's change): raised whenever a change
# could move a figure, so that `bench compare` can warn across it. Runs older than the field read as 0.
METHOD_VERSION = 2

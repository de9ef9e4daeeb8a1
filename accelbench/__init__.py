"""accelbench: accelerator benchmarks whose figures are checked, comparable and traceable."""

__version__ = "0.1.0"
SCHEMA_VERSION = 1

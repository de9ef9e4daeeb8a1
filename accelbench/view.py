"""What a benchmark declares about how its figures are shown: its headline metrics, its rows of
the report's overview, its plots and its tables. Plain data: the session writes every benchmark's
view into run.json (`views`) and reports read it from there, so that nothing under `reports/`
names a benchmark or its metrics. Runs written before views were recorded are shown with the
current declarations (`store.LoadedRun.views`)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional


@dataclass(frozen=True)
class OverviewRow:
    """One row of the overview: per device, the best value of `metric` over the benchmark's ok
    cases whose parameters (or facts) match `where`."""

    name: str
    metric: str
    where: tuple[tuple[str, Any], ...] = ()
    higher_is_better: bool = True
    # Reported from the case that is best in this other metric (the MFU of the fastest GEMM).
    of_best: Optional[str] = None
    largest: Optional[str] = None  # only the cases with the largest value of this parameter
    # Parameters two devices' cases must share for a ratio (decode: the same model), shown with the figure.
    same: tuple[str, ...] = ()
    # The parameters that make two cases the same work (decode: model, batch, prompt, new tokens,
    # engine, dtype). Where given, devices are compared only on work every one of them ran: the
    # common case with the largest `largest` (else the baseline's best), or, with none in common,
    # each device's own best and no ratio ("no common case").
    compare_on: tuple[str, ...] = ()
    ceiling: Optional[str] = None  # read from the runs' measured ceiling of this key instead of their cases
    order: int = 0  # the rows of all benchmarks are shown in this order
    # The procurement view prices this row's work: (what the work is called, "tokens" or "TFLOP").
    priced: Optional[tuple[str, str]] = None
    # Why a device whose runs have this benchmark can have no case matching `where` (shown instead
    # of a figure; default: "no case with <where>").
    absent: str = ""
    # The parameter of the priced case that names its precision recipe (decode: "fp8"): the
    # procurement view then shows what that recipe costs in quality, where a run measured it
    # (a benchmark's `RecipeCost`).
    recipe: Optional[str] = None
    benchmark: str = ""  # filled in from the declaring benchmark

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "OverviewRow":
        fields = dict(data)
        fields["where"] = tuple((k, v) for k, v in fields.get("where", ()))
        fields["same"] = tuple(fields.get("same", ()))
        fields["compare_on"] = tuple(fields.get("compare_on", ()))
        fields["priced"] = tuple(fields["priced"]) if fields.get("priced") else None
        return cls(**fields)


@dataclass(frozen=True)
class RecipeCost:
    """What a precision recipe costs in quality, declared by the benchmark that measures it (task
    accuracy): per value of `per`, the difference `delta` from the unquantized model with its
    interval [`low`, `high`], for cases whose `recipe` parameter names the recipe."""

    recipe: str  # the parameter naming the recipe, matched against OverviewRow.recipe's value
    delta: str
    low: str
    high: str
    per: str  # the parameter the delta is measured over (a task)
    verdict: str = ""  # a fact that says what the interval means
    model: str = ""  # a fact naming the model evaluated
    unit: str = "points"
    benchmark: str = ""  # filled in from the declaring benchmark

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RecipeCost":
        return cls(**data)


def recipe_costs(views: dict[str, dict[str, Any]]) -> list[RecipeCost]:
    return [RecipeCost.from_json(view["recipe_cost"]) for view in views.values() if view.get("recipe_cost")]


def overview_rows(views: dict[str, dict[str, Any]]) -> list[OverviewRow]:
    """Every benchmark's overview rows in `views` (run.json's `views`), in their declared order."""
    rows = [OverviewRow.from_json(r) for view in views.values() for r in view.get("overview", ())]
    return sorted(rows, key=lambda r: r.order)


@dataclass(frozen=True)
class Plot:
    """A plot declared beside its benchmark, in the shape of triton's `perf_report`: each metric of
    `y` (one axes each, side by side) against `x`, one line per value of `series`, optionally one
    panel per value of `panels`. Drawn by reports/plots.py from the run files alone."""

    title: str
    x: str  # a parameter or fact; with `scatter`, a metric
    y: tuple[str, ...]  # metrics
    series: tuple[str, ...] = ()  # parameters whose values name a line (or a point)
    panels: Optional[str] = None  # one panel per value of this parameter
    where: tuple[tuple[str, Any], ...] = ()  # only the cases with these parameter values
    x_label: str = ""
    y_labels: tuple[str, ...] = ()
    y_scales: tuple[float, ...] = ()  # y is multiplied by these (1e3: seconds shown as ms)
    x_log: int = 2  # base of the logarithmic x axis; 0 for a linear one
    scatter: bool = False  # one labelled point per series (x and y both metrics), not lines
    largest: tuple[str, ...] = ()  # only the cases with the largest product of these parameters
    unnamed: tuple[str, ...] = ()  # series values left out of labels (the default implementation)
    defaults: tuple[tuple[str, Any], ...] = ()  # values of series parameters older runs did not record
    formats: tuple[tuple[str, str], ...] = ()  # how a series value is shown, e.g. ("prompt", "p{}")
    # Reference lines from the run files: "memory_bandwidth" (datasheet), "cache" (the last-level
    # cache size, working sets under 4x it shaded: cache, not device memory), "link_bandwidth".
    marks: tuple[str, ...] = ()
    columns: int = 3  # panels per row

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Plot":
        fields = dict(data)
        for name in ("y", "series", "y_labels", "y_scales", "largest", "unnamed", "marks"):
            fields[name] = tuple(fields.get(name, ()))
        for name in ("where", "defaults", "formats"):
            fields[name] = tuple((k, v) for k, v in fields.get(name, ()))
        return cls(**fields)


def plots_of(views: dict[str, dict[str, Any]], benchmark: str) -> list[Plot]:
    return [Plot.from_json(p) for p in views.get(benchmark, {}).get("plots", ())]


@dataclass(frozen=True)
class TableView:
    """The benchmark's tables in the report: `key` are the figures that matter, in order (the compact
    table shows the first three a run has, sorted by the first); the full table lists `key`, then
    `more`, then every other metric."""

    key: tuple[str, ...] = ("tflops", "mfu", "gbps", "bw_util", "tokens_per_s", "time")
    more: tuple[str, ...] = ()
    lower_is_better: tuple[str, ...] = ("time",)  # of `key`, those where less is better (how the table sorts)
    names: tuple[tuple[str, str], ...] = ()  # short column titles of metrics
    facts: tuple[tuple[str, str], ...] = ()  # facts shown beside the figures: (fact, column title)

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TableView":
        fields = {name: tuple(tuple(v) if isinstance(v, list) else v for v in value) for name, value in data.items()}
        return cls(**fields)


def table_of(views: dict[str, dict[str, Any]], benchmark: str) -> TableView:
    found = views.get(benchmark, {}).get("table")
    return TableView.from_json(found) if found else TableView()


@dataclass(frozen=True)
class RunFigures:
    """What a derived figure may read of its run besides its own case: the measured ceilings, the
    datasheet spec, and the other ok cases as (benchmark, parameters, metrics)."""

    ceilings: dict[str, float] = dataclasses.field(default_factory=dict)
    spec: dict[str, Any] = dataclasses.field(default_factory=dict)
    cases: tuple[tuple[str, dict[str, Any], dict[str, float]], ...] = ()


def _pairs(fields: dict[str, Any], *names: str) -> dict[str, Any]:
    """`fields` with each of `names` as a tuple of (key, value) pairs (JSON has lists)."""
    return fields | {name: tuple((k, v) for k, v in fields.get(name, ())) for name in names}


@dataclass(frozen=True)
class FloorFraction:
    """A figure derived when a run is read, declared as data so that reading needs no benchmark
    code: the time `amount_fact` of the case would take at a bandwidth, over the case's measured
    `per_metric` time, in %. The bandwidth is the run's measured ceiling `ceiling` (the metric is
    then `<name>_measured_bw`), else the datasheet's `spec_key` (`<name>_datasheet_bw`). Only cases
    whose facts match `only_where` get it (a step served from the cache is no share of memory
    bandwidth)."""

    name: str
    amount_fact: str
    per_metric: str
    ceiling: str
    spec_key: str = "mem_bandwidth_Bps"
    only_where: tuple[tuple[str, Any], ...] = ()

    def metrics(self, params_and_facts: dict[str, Any], metrics: dict[str, float],
                run: RunFigures) -> list[tuple[str, float, str]]:
        ceilings, spec = run.ceilings, run.spec
        per, amount = metrics.get(self.per_metric), params_and_facts.get(self.amount_fact)
        if not per or not amount or any(params_and_facts.get(k, v) != v for k, v in self.only_where):
            return []
        if ceilings.get(self.ceiling):
            return [(f"{self.name}_measured_bw", 100.0 * amount / ceilings[self.ceiling] / per, "%")]
        if spec.get(self.spec_key):
            return [(f"{self.name}_datasheet_bw", 100.0 * amount / spec[self.spec_key] / per, "%")]
        return []

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "FloorFraction":
        return cls(**_pairs(dict(data), "only_where"))


@dataclass(frozen=True)
class StepModel:
    """A step's time predicted from the run's measured ceiling (accelbench/explain/model.py), derived
    when a run is read: the weights (`weights_fact` bytes) at the measured bandwidth `ceiling`, plus
    the step without its projections where the case timed it (`fixed_metric`: attention over the
    cache, norms, quantizers, sampling, launches, all measured), else the rest of the bytes a step
    reads (`bytes_fact` less the weights: the KV cache) at the same bandwidth, against the case's
    measured `per_metric` time. Metrics: `predicted_<per>` (s), `<per>_vs_predicted` (x, measured ÷
    predicted), and each part's share of the measured time, `<per>_share_<part>` (%), the unexplained
    rest included. Without the run's ceiling: no prediction (never the datasheet's)."""

    per_metric: str
    weights_fact: str
    bytes_fact: str
    ceiling: str
    only_where: tuple[tuple[str, Any], ...] = ()
    fixed_metric: Optional[str] = None
    # Where the case timed its projections themselves (FP8: each one's chosen kernel over every
    # layer's weights), that time is a measured part and only the weights it does not cover
    # (`untimed_weights_fact` bytes: the bf16 output layer) are modelled.
    projections_metric: Optional[str] = None
    untimed_weights_fact: Optional[str] = None
    kind: str = "step_model"

    def metrics(self, params_and_facts: dict[str, Any], metrics: dict[str, float],
                run: RunFigures) -> list[tuple[str, Optional[float], str]]:
        from accelbench.explain.model import Ceilings, decode_step
        per, weights, total = (metrics.get(self.per_metric), params_and_facts.get(self.weights_fact),
                               params_and_facts.get(self.bytes_fact))
        if not per or not weights or not total or any(params_and_facts.get(k, v) != v for k, v in self.only_where):
            return []
        fixed = metrics.get(self.fixed_metric) if self.fixed_metric else None
        kv = 0.0 if fixed else max(0.0, float(total) - float(weights))  # the timed rest reads the cache itself
        measured = {"fixed_work": fixed} if fixed else {}
        projections = metrics.get(self.projections_metric) if self.projections_metric and fixed else None
        untimed = params_and_facts.get(self.untimed_weights_fact) if self.untimed_weights_fact else None
        if projections and untimed is not None:
            weights, measured = float(untimed), {"projections": projections, **measured}
        explained = decode_step("", per, float(weights), kv, Ceilings.from_values(run.ceilings, self.ceiling),
                                fixed=measured or None)
        return _explained_metrics(explained, self.per_metric)

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "StepModel":
        return cls(**_pairs(dict(data), "only_where"))


@dataclass(frozen=True)
class PrefillModel:
    """The prefill (TTFT) predicted from the run's measured matmul rate: the projections' FLOPs
    (`flops_fact`) at the run's best measured rate for the case's matmul dtype (`dtype_fact`: the
    ceiling `matmul.<dtype>`), the output layer's weights for the one position it runs on
    (`head_fact` bytes) at the measured read bandwidth `read_ceiling`, and the prefill without its
    projections (`fixed_metric`, measured on the case's engine). Metrics `predicted_<per>`,
    `<per>_vs_predicted` and `<per>_share_<part>`. Only cases that timed the part get a prediction."""

    per_metric: str
    flops_fact: str
    head_fact: str
    dtype_fact: str
    read_ceiling: str
    fixed_metric: str
    kind: str = "prefill_model"

    def metrics(self, params_and_facts: dict[str, Any], metrics: dict[str, float],
                run: RunFigures) -> list[tuple[str, Optional[float], str]]:
        from accelbench.explain.model import Ceilings, prefill
        per, flops, fixed = (metrics.get(self.per_metric), params_and_facts.get(self.flops_fact),
                             metrics.get(self.fixed_metric))
        dtype = params_and_facts.get(self.dtype_fact)
        if not per or not flops or not fixed or not dtype:
            return []
        explained = prefill("", per, float(flops), str(dtype), Ceilings.from_values(run.ceilings, self.read_ceiling),
                            fixed_s=fixed,
                            head_bytes=float(params_and_facts.get(self.head_fact) or 0.0))
        return _explained_metrics(explained, self.per_metric)

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "PrefillModel":
        return cls(**dict(data))


def _explained_metrics(explained, per_metric: str) -> list[tuple[str, Optional[float], str]]:
    if explained.missing:
        return [(f"predicted_{per_metric}", None, "s")]
    return ([(f"predicted_{per_metric}", explained.predicted_s, "s"),
             (f"{per_metric}_vs_predicted", explained.ratio, "x")]
            + [(f"{per_metric}_share_{name}", 100.0 * share, "%") for name, share in explained.shares().items()])


@dataclass(frozen=True)
class BesideCase:
    """A figure set beside another benchmark's case of the same run, derived when the run is read:
    `name` = this case's `per_metric` ÷ the other case's `other_metric`, where the other case is of
    `benchmark`, has the parameters `params`, and has as each parameter of `linked` (other's
    parameter, this case's fact or parameter) this case's value (serve at concurrency 1: the
    engine's TPOT over the decode graphs engine's for the same model shape on the same device)."""

    name: str
    per_metric: str
    benchmark: str
    other_metric: str
    params: tuple[tuple[str, Any], ...] = ()
    linked: tuple[tuple[str, str], ...] = ()
    only_where: tuple[tuple[str, Any], ...] = ()
    kind: str = "beside_case"

    def metrics(self, params_and_facts: dict[str, Any], metrics: dict[str, float],
                run: RunFigures) -> list[tuple[str, Optional[float], str]]:
        mine = metrics.get(self.per_metric)
        if not mine or any(params_and_facts.get(k, v) != v for k, v in self.only_where):
            return []
        want = dict(self.params) | {theirs: params_and_facts.get(ours) for theirs, ours in self.linked}
        if any(v is None for v in want.values()):
            return []
        for benchmark, params, values in run.cases:
            if benchmark == self.benchmark and all(params.get(k) == v for k, v in want.items()) \
                    and values.get(self.other_metric):
                return [(self.name, mine / values[self.other_metric], "x")]
        return []

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "BesideCase":
        fields = _pairs(dict(data), "params", "linked", "only_where")
        fields.pop("note", None)  # runs written before it was dropped
        return cls(**fields)


_DERIVED = {"step_model": StepModel, "prefill_model": PrefillModel, "beside_case": BesideCase}


def derived_of(views: dict[str, dict[str, Any]], benchmark: str) -> list["FloorFraction | StepModel | PrefillModel | BesideCase"]:
    return [_DERIVED.get(d.get("kind"), FloorFraction).from_json(d) for d in views.get(benchmark, {}).get("derived", ())]

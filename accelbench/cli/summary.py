"""What `bench run` prints when a run ends: the best figure per benchmark and group, the timing
regimes side by side, the spread between repeats. Presentation only: everything comes from the
records and the run's views."""
from __future__ import annotations

from rich.table import Table

from accelbench.benchmark import benchmark_classes
from accelbench.cli.console import console
from accelbench.progress import headline
from accelbench.stats import COMPARE_THRESHOLD
from accelbench.store import LoadedRun
from accelbench.timing import REGIME_MARK

# Facts that split a group: a cache-resident bandwidth is never ranked beside a device-memory one.
GROUP_FACTS = ("memory_level",)


def print_summary(records) -> None:
    """Best headline figure per benchmark and group (the parameters each benchmark groups its cases
    by, `Benchmark.summary_groups`, and the memory level)."""
    classes = benchmark_classes()
    table = Table(title="best figure per benchmark and group")
    for col in ("benchmark", "group", "best", "MFU/util", "ok/failed/skipped", "best case"):
        table.add_column(col, overflow="fold")
    groups: dict[tuple[str, str], list] = {}
    for r in records:
        keys = classes[r.benchmark].summary_groups if r.benchmark in classes else ()
        group = " ".join([str(r.params[k]) for k in keys if k in r.params]
                         + [str(r.facts[k]) for k in GROUP_FACTS if k in r.facts]
                         + [r.case_id.partition(REGIME_MARK)[2]])  # a burst figure is not a sustained one
        groups.setdefault((r.benchmark, group), []).append(r)
    for (bench, group), recs in sorted(groups.items()):
        figures = [(m.value, r) for r in recs if r.status == "ok" and (m := r.headline_metric()) is not None]
        best = max(figures, key=lambda f: f[0])[1] if figures else None
        counts = "/".join(str(sum(r.status == s for r in recs)) for s in ("ok", "failed", "skipped"))
        why_not = "" if best else "; ".join(sorted({r.reason.split(":")[0] for r in recs if r.reason}))[:80]
        table.add_row(bench, group, (headline(best) if best else "—") + (" (emulated)" if best and "emulated" in best.facts else ""),
                      utilization_text(best), counts, best.case_id if best else why_not or "—")
    console.print(table)


def print_regimes(run: LoadedRun) -> None:
    """With several --regime: each case's figure and clocks per regime, side by side."""
    from accelbench.reports.regimes import regime_table
    from accelbench.store import cases_frame
    found = regime_table(cases_frame([run]))
    if not found.rows:
        return
    # Columns with no reading anywhere (no clocks on this device) would only crowd the terminal.
    shown = [i for i, _ in enumerate(found.columns) if any(row[i] != "—" for row in found.rows)]
    table = Table(title="timing regimes side by side")
    for i in shown:
        table.add_column(found.columns[i], overflow="fold")
    for row in found.rows:
        table.add_row(*(row[i] for i in shown))
    console.print(table)


def print_repeat_spread(records) -> None:
    """With --repeat: per case, the spread between the repeats' medians beside its samples' own."""
    from accelbench.store import repeat_spreads
    spreads = repeat_spreads(records)
    if not spreads:
        return
    within: dict[tuple[str, str], list[float]] = {}
    for case in records:
        if (case.benchmark, case.case_id) in spreads and case.stats is not None:
            within.setdefault((case.benchmark, case.case_id), []).append(case.stats.cv)
    table = Table(title=f"spread between repeats (flagged: range over bench compare's {COMPARE_THRESHOLD:.0%})")
    for col in ("benchmark", "case", "repeats", "CV of medians", "range", "within-run CV (median)", ""):
        table.add_column(col, overflow="fold")
    for (bench, case_id), s in sorted(spreads.items(), key=lambda kv: -kv[1].cv):
        table.add_row(bench, case_id, str(s.repeats), f"{100 * s.cv:.2f} %", f"{100 * s.range_rel:.1f} %",
                      f"{100 * sorted(within[(bench, case_id)])[len(within[(bench, case_id)]) // 2]:.2f} %",
                      "beyond threshold" if s.beyond_compare_threshold else "")
    console.print(table)


def utilization_text(best) -> str:
    if best is None:
        return "—"
    util = best.metric("mfu") or best.metric("bw_util") or best.metric("link_util")
    if util is not None and util.value is not None:
        return f"{util.value:.1f} %"
    gbps = best.metric("gbps")
    if gbps is not None and gbps.note:  # cache or link bandwidth: no share of device memory
        return gbps.note.split(":")[0]
    return "unknown"

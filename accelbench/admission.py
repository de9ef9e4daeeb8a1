"""Whether a case may run here, before it allocates or calls anything, and whether one call fits
the suite's time budget (docs/method.md, Budgets): emulated dtypes left out of the quick suite,
device memory stated before allocating, and a call predicted or measured over the per-call budget
skipped with its time."""
from __future__ import annotations

from typing import Any

from accelbench.backends.base import Backend
from accelbench.benchmark import Benchmark, Case, Workload
from accelbench.distributed import SOLO, Group
from accelbench.errors import CaseSkipped
from accelbench.records import CaseRecord
from accelbench.timing import TimingPolicy, timed_call

NEXT_SUITE = {"quick": "standard", "standard": "full", "full": "full"}
# A case predicted to exceed its per-call budget this many times over is skipped without running
# one call. Rates grow with size, so a prediction from smaller cases errs long: the margin keeps
# cases near the budget measured rather than predicted.
PREDICTION_MARGIN = 4.0


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


class Admission:
    def __init__(self, backend: Backend, suite: str, skip_emulated: bool, group: Group = SOLO):
        self.backend = backend
        self.suite = suite
        self.skip_emulated = skip_emulated
        self.group = group
        self._emulated = backend.emulated_matmul_dtypes()
        # Best rate one call reached so far per (benchmark, dtype or "bytes"): (rate, case id), in
        # work per second of wall time, or of the backend's probe where it probes.
        self._rates: dict[tuple[str, str], tuple[float, str]] = {}

    def admit(self, bench: Benchmark, case: Case, record: CaseRecord) -> None:
        """Decide, before anything is allocated, whether the case may run here."""
        emulated = [self._emulated[d] for d in case.matmul_dtypes if d in self._emulated]
        if emulated:
            if self.skip_emulated:
                raise CaseSkipped(f"{'; '.join(emulated)}: left out of the {self.suite} suite "
                                  f"(run it with --suite {NEXT_SUITE[self.suite]})")
            record.facts["emulated"] = "; ".join(emulated)
        need = bench.device_bytes(case, self.backend)
        if need:
            record.facts["device_bytes_needed"] = need
            free = self.backend.free_memory_bytes()
            if free is not None and need > free:
                raise CaseSkipped(f"needs {gib(need)} of device memory, {gib(free)} free")

    def predict(self, bench: Benchmark, case: Case, policy: TimingPolicy) -> None:
        """Before `prepare`: skip a case whose declared work (Benchmark.budget_estimate) is
        predicted far over the per-call budget, without building anything."""
        estimate = bench.budget_estimate(case)
        if estimate is not None:
            self._skip_if_predicted_over((bench.name, estimate[0]), estimate[1], policy.call_budget_s)

    def first_call(self, benchmark: str, workload: Workload, policy: TimingPolicy,
                   case_id: str = "") -> tuple[Any, float]:
        """The correctness call and its wall time, within the suite's per-call budget: a case
        predicted far over it is skipped without a call; one whose call (and a second, past any
        compiling or autotuning of the first) is over it is skipped with that time, which still
        tells later cases of its kind how fast such work goes. A backend that measures a call's
        cost apart (Backend.budget_probe: a CPU) is judged by that cost instead, once the
        checked call has passed (`confirm_budget`)."""
        budget = policy.call_budget_s
        # An emulated bf16 16384^3 product on an AVX2 CPU would take hours: not even once.
        self._skip_if_predicted_over(*_work_amount(benchmark, workload), budget)
        output, first_s = timed_call(self.backend, workload.run, self.group)
        if budget and not self.backend.probes_budget and first_s > budget:
            del output
            if workload.reset:
                workload.reset()
            output, again_s = timed_call(self.backend, workload.run, self.group)
            if again_s > budget:
                self.measured(benchmark, workload, again_s, case_id)
                raise self._over_budget(f"one call took {again_s:.3g} s", budget)
        return output, first_s

    def confirm_budget(self, benchmark: str, workload: Workload, policy: TimingPolicy, case_id: str = "") -> None:
        """After the checked call, on a backend that measures a call's cost apart (a CPU: one
        thread's CPU time, which a busy neighbour does not move, so the same cases run on an idle
        and on a busy machine): skip the case if that cost is over the budget. The probe's calls
        leave the work as the timed calls expect it (Workload.reset, Workload.rewind)."""
        budget = policy.call_budget_s
        if not budget or not self.backend.probes_budget:
            return
        cost = None
        for _ in range(2):  # a second try, past any set-up the first call did not already pay
            found = self.backend.budget_probe(workload.run)
            for restore in (workload.reset, workload.rewind):
                if restore:
                    restore()
            cost = found if cost is None else min(cost, found)
            if self.group.leader_decides(cost <= budget):  # every rank decides alike
                break
        cost = self.group.slowest([cost])[0]
        self._learn(benchmark, workload, cost, case_id)
        if cost > budget:
            raise self._over_budget(f"one call needs {cost:.3g} s (its CPU time on one thread, shared over the "
                                    f"compute threads)", budget)

    def measured(self, benchmark: str, workload: Workload, median_s: float, case_id: str) -> None:
        """A case's steady per-call wall time: the best rate of its kind, for later predictions
        (on a backend that probes, the probe has taught it, free of load)."""
        if not self.backend.probes_budget:
            self._learn(benchmark, workload, median_s, case_id)

    def _learn(self, benchmark: str, workload: Workload, call_s: float, case_id: str) -> None:
        key, amount = _work_amount(benchmark, workload)
        best = self._rates.get(key)
        if amount and call_s > 0 and (best is None or amount / call_s > best[0]):
            self._rates[key] = (amount / call_s, case_id)

    def _over_budget(self, what: str, budget: float) -> CaseSkipped:
        return CaseSkipped(f"{what}, over the {self.suite} suite's per-call budget of {budget:g} s "
                           f"(run it with --suite {NEXT_SUITE[self.suite]}, or --call-budget 0)")

    def _skip_if_predicted_over(self, key: tuple[str, str], amount: float, budget: float) -> None:
        """Skip a call predicted over PREDICTION_MARGIN times the budget, at the best rate a case of
        the same benchmark and kind reached in this run (none before the first). Rates grow with
        size, so this errs long."""
        best = self._rates.get(key)
        if not budget or not amount or best is None:
            return
        predicted = amount / best[0]
        if predicted > PREDICTION_MARGIN * budget:
            raise self._over_budget(f"one call would take about {predicted:.3g} s (at the best rate a case of this "
                                    f"kind reached in this run, {best[1]}'s)", budget)


def _work_amount(benchmark: str, workload: Workload) -> tuple[tuple[str, str], float]:
    if workload.budget_work is not None:
        kind, amount = workload.budget_work
        return (benchmark, kind), amount
    work = workload.work
    if work.flops:
        return (benchmark, work.flops_dtype or "flops"), work.flops
    return (benchmark, "bytes"), work.bytes

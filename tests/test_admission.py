"""Admission: a call predicted far over the suite's budget is never made, also for work that only
its benchmark can size (`Workload.budget_work`), and a call over budget still teaches the rate."""
import time

import pytest

from accelbench.admission import Admission
from accelbench.benchmark import Work, Workload
from accelbench.errors import CaseSkipped
from accelbench.timing import SUITE_POLICIES


def workload(calls, seconds, amount, kind="eager/bf16/none"):
    def run():
        calls.append(amount)
        time.sleep(seconds)
        return amount
    return Workload(run=run, check=lambda out: None, work=Work(tokens=8), working_set_bytes=0,
                    budget_work=(kind, amount))


def test_a_call_over_budget_predicts_its_larger_kin_and_they_are_skipped_uncalled(cpu_backend):
    admission = Admission(cpu_backend, "quick", skip_emulated=False)
    budget = SUITE_POLICIES["quick"]  # 0.25 s per call
    calls = []
    with pytest.raises(CaseSkipped, match="one call took"):  # 0.3 s, twice: over budget
        admission.first_call("decode", workload(calls, 0.3, 1e6), budget, "small")
    assert calls == [1e6, 1e6]
    with pytest.raises(CaseSkipped, match=r"would take about .* small's"):  # 25x the work: about 7.5 s
        admission.first_call("decode", workload(calls, 0.3, 25e6), budget, "large")
    assert calls == [1e6, 1e6]  # never called
    other = workload(calls, 0.0, 25e6, kind="graphs/bf16/none")  # another kind: no prediction, it runs
    assert admission.first_call("decode", other, budget, "other")[0] == 25e6

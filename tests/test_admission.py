"""Admission: a call predicted far over the suite's budget is never made, also for work that only
its benchmark can size (`Workload.budget_work`), and a call over budget still teaches the rate. On
a CPU a call's cost is its CPU time on one thread, which a busy neighbour does not move."""
import multiprocessing
import time

import pytest
import torch

from accelbench.admission import Admission
from accelbench.benchmark import Work, Workload
from accelbench.errors import CaseSkipped
from accelbench.timing import SUITE_POLICIES


def spin(seconds):
    start = time.thread_time()
    while time.thread_time() - start < seconds:
        pass


def workload(calls, seconds, amount, kind="eager/bf16/none"):
    """A call that costs `seconds` per compute thread (CPU work on one thread: what the CPU's
    budget probe counts)."""
    threads = torch.get_num_threads()  # as the timed calls use them (the probe runs on one)

    def run():
        calls.append(amount)
        spin(seconds * threads)
        return amount
    return Workload(run=run, check=lambda out: None, work=Work(tokens=8), working_set_bytes=0,
                    budget_work=(kind, amount))


def test_a_call_over_budget_predicts_its_larger_kin_and_they_are_skipped_uncalled(cpu_backend):
    admission = Admission(cpu_backend, "quick", skip_emulated=False)
    budget = SUITE_POLICIES["quick"]  # 0.25 s per call
    calls = []
    small = workload(calls, 0.3, 1e6)
    admission.first_call("decode", small, budget, "small")  # the checked call: a CPU's is not judged by wall time
    with pytest.raises(CaseSkipped, match="one call needs 0.3"):  # its cost, measured twice: over budget
        admission.confirm_budget("decode", small, budget, "small")
    assert calls == [1e6, 1e6, 1e6]
    with pytest.raises(CaseSkipped, match=r"would take about .* small's"):  # 25x the work: about 7.5 s
        admission.first_call("decode", workload(calls, 0.3, 25e6), budget, "large")
    assert calls == [1e6, 1e6, 1e6]  # never called
    other = workload(calls, 0.0, 25e6, kind="graphs/bf16/none")  # another kind: no prediction, it runs
    assert admission.first_call("decode", other, budget, "other")[0] == 25e6


def _hog(seconds):
    spin(seconds)


def test_a_busy_neighbour_does_not_change_what_a_cpu_call_costs_against_the_budget(cpu_backend):
    a, b = torch.randn(384, 384), torch.randn(384, 384)

    def work():
        for _ in range(40):
            a @ b

    idle = min(cpu_backend.budget_probe(work) for _ in range(3))
    hogs = [multiprocessing.get_context("spawn").Process(target=_hog, args=(30,)) for _ in range(2)]
    for hog in hogs:
        hog.start()
    try:
        time.sleep(1.0)  # the neighbours are up
        busy = min(cpu_backend.budget_probe(work) for _ in range(3))
    finally:
        for hog in hogs:
            hog.terminate()
    assert 0.6 < busy / idle < 1.5, (idle, busy)


class _Declared:
    """What admission asks of a benchmark before preparing a case: its name and estimate."""
    name = "decode"

    def __init__(self, amount):
        self.amount = amount

    def budget_estimate(self, case):
        return "eager/bf16/none", self.amount


def test_a_case_whose_declared_work_is_far_over_budget_is_skipped_before_it_is_built(cpu_backend):
    admission = Admission(cpu_backend, "quick", skip_emulated=False)
    budget = SUITE_POLICIES["quick"]
    calls = []
    small = workload(calls, 0.01, 1e6)
    admission.first_call("decode", small, budget, "small")
    admission.confirm_budget("decode", small, budget, "small")  # teaches the rate
    admission.predict(_Declared(2e6), None, budget)  # about 0.02 s: goes on to be built
    with pytest.raises(CaseSkipped, match=r"would take about .* small's"):
        admission.predict(_Declared(1e9), None, budget)  # about 10 s: never built

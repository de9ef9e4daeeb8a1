import math

import pytest
import torch

from accelbench.accuracy import compare
from accelbench.benchmark import Case, Work, Workload
from accelbench.errors import CaseSkipped
from accelbench.microbench.gemm import Gemm, gemm_case
from accelbench.records import Accuracy
from accelbench.specs import DeviceSpec


class WrongGemm(Gemm):
    """A GEMM whose result is deliberately wrong by 3%."""

    def matmul(self, a, b, out):
        return torch.matmul(a, b, out=out).mul_(1.03)


def test_correct_gemm_is_timed_and_has_figures(cpu_backend, make_runner):
    record = make_runner(cpu_backend).run_case(Gemm(), gemm_case("square", "fp32", 96, 80, 64, "x"))
    assert record.status == "ok", record.reason
    assert record.accuracy.passed and record.accuracy.rel_fro_error < 1e-5
    tflops = record.metric("tflops").value
    assert tflops == pytest.approx(2 * 96 * 80 * 64 / record.stats.median / 1e12)
    assert record.stats.n == len(record.samples_s) >= 3
    assert record.method.timer == "perf_counter_ns after synchronize"
    assert record.ceiling == "matmul.fp32"


def test_wrong_gemm_is_failed_with_no_figure(cpu_backend, make_runner):
    record = make_runner(cpu_backend).run_case(WrongGemm(), gemm_case("square", "bf16", 64, 64, 64, "x"))
    assert record.status == "failed"
    assert "wrong result" in record.reason
    assert record.accuracy is not None and not record.accuracy.passed
    assert record.accuracy.rel_fro_error == pytest.approx(0.03, rel=0.2)
    assert record.metric("tflops") is None and record.samples_s == [] and record.stats is None


def test_unsupported_dtype_is_skipped_with_reason(cpu_backend, make_runner):
    record = make_runner(cpu_backend).run_case(Gemm(), gemm_case("square", "tf32", 64, 64, 64, "x"))
    assert record.status == "skipped" and "tf32" in record.reason


class ExplodingBench(Gemm):
    name = "exploding"

    def prepare(self, case, backend):
        if case.params["m"] == 1:
            raise RuntimeError("kernel exploded")
        if case.params["m"] == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80 GiB")
        return super().prepare(case, backend)


def test_failures_are_isolated_and_the_run_goes_on(cpu_backend, make_runner):
    runner = make_runner(cpu_backend)
    plan = [(ExplodingBench(), gemm_case("square", "fp32", m, 32, 32, str(m))) for m in (1, 2, 32)]
    summary = runner.run(plan)
    statuses = [(r.status, r.reason or "") for r in summary.records]
    assert statuses[0][0] == "failed" and "RuntimeError: kernel exploded" in statuses[0][1]
    assert statuses[1][0] == "failed" and statuses[1][1].startswith("out of memory")
    assert statuses[2][0] == "ok"


def test_mfu_uses_the_dtype_peak_and_is_unknown_without_one(cpu_backend, make_runner, monkeypatch):
    runner = make_runner(cpu_backend)
    runner.spec = DeviceSpec("fake", {"fp32": 1e9}, None, None, "test")
    rec = runner.run_case(Gemm(), gemm_case("square", "fp32", 64, 64, 64, "x"))
    achieved = rec.metric("tflops").value * 1e12
    assert rec.metric("mfu").value == pytest.approx(100 * achieved / 1e9)
    runner.spec = None
    rec = runner.run_case(Gemm(), gemm_case("square", "fp32", 64, 64, 64, "x"))
    assert rec.metric("mfu").value is None and "no fp32 peak" in rec.metric("mfu").note


def test_cache_is_flushed_only_when_the_working_set_fits(cpu_backend, make_runner, monkeypatch):
    monkeypatch.setattr(cpu_backend, "cache_bytes", lambda: 1 << 20)
    flushes = []
    monkeypatch.setattr(cpu_backend, "flush_cache", lambda: flushes.append(1))
    runner = make_runner(cpu_backend)
    small = runner.run_case(Gemm(), gemm_case("square", "fp32", 64, 64, 64, "s"))
    assert small.method.cache.startswith("flushed") and len(flushes) == small.stats.n
    flushes.clear()
    big = runner.run_case(Gemm(), gemm_case("square", "fp32", 512, 512, 512, "b"))  # 3 MiB > 1 MiB
    assert big.method.cache.startswith("not flushed") and not flushes


def test_inputs_are_random_not_constant(cpu_backend):
    work = Gemm().prepare(gemm_case("square", "fp32", 32, 32, 32, "x"), cpu_backend)
    out = work.run()
    assert out.std() > 0.5  # a product of standard normals, never zeros or constants


def test_gemm_cases_cover_the_llm_and_published_shapes():
    ids = {c.case_id: c.params for c in Gemm().cases("standard")}
    assert ids["bf16/llm/llama3.1-70b-qkv-t16384"] | {} == {
        "dtype": "bf16", "m": 16384, "k": 8192, "n": 10240, "group": "llm", "shape": "llama3.1-70b-qkv-t16384",
        "values": "normal"}
    assert ids["bf16/llm/llama3.1-8b-down-t1"]["k"] == 14336
    published = {(p["m"], p["k"], p["n"]) for p in ids.values() if p["group"] == "llama70b-tp8"}
    assert published == {(16384, 8192, 1280), (16384, 1024, 8192), (16384, 8192, 7168), (16384, 3584, 8192)}
    assert sum(p["group"] == "mamf" for p in ids.values()) == 64
    assert {p["dtype"] for p in ids.values()} == {"fp32", "tf32", "fp16", "bf16"}


def test_adaptive_timing_stops_at_its_limits(cpu_backend):
    import time
    from accelbench.timing import TimingPolicy, sample
    policy = TimingPolicy(min_samples=5, max_samples=12, min_time_s=10.0, max_time_s=5.0, stable_rel=0.0)
    samples = sample(cpu_backend, lambda: sum(range(100)), policy, flush=False, per_call_estimate_s=1e-2)
    assert len(samples) == 12  # min_time never reached: max_samples ends it
    # max_time ends it too: ~2 ms calls, 0.1 s allowed, batches of ~25 calls (batch_target 0.05 s)
    policy = TimingPolicy(min_samples=1, max_samples=10**9, min_time_s=10.0, max_time_s=0.1, stable_rel=0.0)
    start = time.perf_counter()
    samples = sample(cpu_backend, lambda: time.sleep(0.002), policy, flush=False, per_call_estimate_s=2e-3)
    assert time.perf_counter() - start < 0.5 and 25 <= len(samples) <= 100
    # and a stable median ends it as soon as there are enough samples
    policy = TimingPolicy(min_samples=4, max_samples=10**9, min_time_s=0.0, max_time_s=60.0, stable_rel=1.0)
    assert len(sample(cpu_backend, lambda: None, policy, flush=False, per_call_estimate_s=0.01)) == 10


def test_paired_ratio_times_two_calls_side_by_side(cpu_backend):
    import time
    from accelbench.timing import PAIRED_ROUNDS, paired_ratio
    order = []

    def work(seconds):  # CPU work: on a CPU the two are compared by their CPU time on one thread
        start = time.thread_time()
        while time.thread_time() - start < seconds:
            pass

    def slow():
        order.append("slow")
        work(0.004)

    def fast():
        order.append("fast")
        work(0.002)

    assert paired_ratio(cpu_backend, slow, fast, flush=False, per_call_estimate_s=0.005) == pytest.approx(2.0, rel=0.25)
    # The other call's first (setup) call is untimed; then the two take turns going first (ABBA):
    # batches S F | F S | S F ... run together as S F S ... one run more than there are rounds.
    assert order[0] == "fast" and order[1] == "slow"
    runs = [order[1]] + [b for a, b in zip(order[1:], order[2:]) if a != b]
    assert len(runs) == PAIRED_ROUNDS + 1


def test_check_runs_before_timing(cpu_backend, make_runner):
    calls = []

    class Probe(Gemm):
        def device_bytes(self, case, backend):
            return None

        def prepare(self, case, backend):
            return Workload(run=lambda: calls.append("run") or torch.ones(2),
                            check=lambda out: calls.append("check") or Accuracy(True, 0.0, 0.0, None, 1e-3, "x"),
                            work=Work(flops=1.0), working_set_bytes=10**12)

    make_runner(cpu_backend).run_case(Probe(), Case("p", {}))
    assert calls[:2] == ["run", "check"] and calls.count("check") == 1


def test_skip_exception_is_reported(cpu_backend, make_runner):
    class Skipper(Gemm):
        def device_bytes(self, case, backend):
            return None

        def prepare(self, case, backend):
            raise CaseSkipped("needs a GPU")

    assert make_runner(cpu_backend).run_case(Skipper(), Case("s", {})).reason == "needs a GPU"


def test_graphs_are_chosen_by_measurement_and_checked(graph_backend, make_runner):
    import time
    out = torch.full((256,), math.nan)
    x = torch.randn(256)

    class LaunchBound(Gemm):
        """Each call pays 2 ms of host time before its one op: a graph replays the op alone."""

        def device_bytes(self, case, backend):
            return None

        def prepare(self, case, backend):
            def run():
                time.sleep(0.002)
                return torch.mul(x, 2.0, out=out)
            return Workload(run=run, check=lambda o: compare(o, x.double() * 2, 1e-6, "x*2"),
                            work=Work(bytes=2048.0), working_set_bytes=2048, measures_cache=True)

    rec = make_runner(graph_backend).run_case(LaunchBound(), Case("lb", {}))
    assert rec.status == "ok", rec.reason
    assert rec.method.graphs and rec.method.graph_checked
    assert rec.method.graph_choice.startswith("graph") and "vs eager" in rec.method.graph_choice
    assert rec.stats.median < 1e-3  # the replay, not the host's 2 ms

    class Steady(LaunchBound):
        def prepare(self, case, backend):
            work = super().prepare(case, backend)
            return Workload(run=lambda: torch.mul(x, 2.0, out=out), check=work.check, work=work.work,
                            working_set_bytes=2048, measures_cache=True)

    rec = make_runner(graph_backend, graphs="off").run_case(Steady(), Case("s", {}))
    assert rec.status == "ok" and not rec.method.graphs and rec.method.graph_choice is None


def test_in_place_work_is_reset_before_each_checked_call_and_graphed_only_on_request(graph_backend, make_runner):
    """Like an in-place all-reduce: each call overwrites its input (here, doubles it). The harness
    restores it (`reset`) before the checked calls, instead of poisoning it, and replays it from a
    graph only when asked (`--graphs on`)."""
    import time
    original = torch.randn(128)
    buf = original.clone()

    class InPlace(Gemm):
        with_reset = True

        def device_bytes(self, case, backend):
            return None

        def prepare(self, case, backend):
            buf.copy_(original)

            def run():
                time.sleep(0.001)  # a host-heavy launch, as a small collective's
                return buf.mul_(2.0)
            return Workload(run=run, check=lambda o: compare(o, original.double() * 2, 1e-6, "2x"),
                            work=Work(bytes=1024.0, memory="interconnect"), working_set_bytes=1024,
                            graphs_on_request=True, no_flush_reason="timed back to back",
                            reset=(lambda: buf.copy_(original)) if self.with_reset else None)

    auto = make_runner(graph_backend).run_case(InPlace(), Case("auto", {}))
    assert auto.status == "ok" and not auto.method.graphs
    assert "graphs only with --graphs on" in auto.method.graph_choice and "launch-bound" in auto.method.graph_choice
    assert auto.method.cache == "not flushed: timed back to back" and auto.metric("algbw") is not None
    on = make_runner(graph_backend, graphs="on").run_case(InPlace(), Case("on", {}))
    assert on.status == "ok" and on.method.graphs and on.method.graph_checked
    InPlace.with_reset = False  # poisoned instead: the replay doubles NaN, and the check says so
    broken = make_runner(graph_backend, graphs="on").run_case(InPlace(), Case("no-reset", {}))
    assert broken.status == "failed" and "replayed graph" in broken.reason


def test_a_graph_replaying_stale_inputs_fails_the_case(graph_backend, make_runner):
    out = torch.empty(64)
    state = {"x": torch.randn(64)}

    class FreshInputs(Gemm):
        """Draws a new input every call (as a data-loading benchmark would); a graph captured
        once keeps replaying on the input of its capture."""

        def device_bytes(self, case, backend):
            return None

        def prepare(self, case, backend):
            def run():
                state["x"] = torch.randn(64)
                return torch.mul(state["x"], 3.0, out=out)
            return Workload(run=run, check=lambda o: compare(o, state["x"].double() * 3, 1e-6, "3x"),
                            work=Work(bytes=512.0), working_set_bytes=512, measures_cache=True)

    rec = make_runner(graph_backend, graphs="on").run_case(FreshInputs(), Case("stale", {}))
    assert rec.status == "failed" and "replayed graph" in rec.reason and rec.stats is None


def test_a_case_whose_call_exceeds_the_budget_is_skipped_with_its_time(cpu_backend, make_runner):
    import time
    from dataclasses import replace
    calls = []

    class Slow(Gemm):
        def device_bytes(self, case, backend):
            return None

        def prepare(self, case, backend):
            threads = torch.get_num_threads()  # a CPU call is judged by its CPU time on one thread, over these

            def run():
                calls.append(1)
                start = time.thread_time()
                while time.thread_time() - start < 0.06 * threads:  # 0.06 s of work per compute thread
                    pass
                return torch.ones(1)
            return Workload(run=run, check=lambda o: Accuracy(True, 0.0, 0.0, None, 0.0, "x"),
                            work=Work(flops=1.0), working_set_bytes=10**12)

    runner = make_runner(cpu_backend, suite="quick")
    runner.options = replace(runner.options, policy=replace(runner.options.policy, call_budget_s=0.05))
    rec = runner.run_case(Slow(), Case("slow", {}))
    assert rec.status == "skipped" and rec.stats is None
    assert "one call needs 0.06" in rec.reason and "budget of 0.05 s" in rec.reason
    # the checked call, then the cost measured twice (the second confirms the first)
    assert "--suite standard" in rec.reason and len(calls) == 3
    runner.options = replace(runner.options, policy=replace(runner.options.policy, call_budget_s=0.0))
    assert runner.run_case(Slow(), Case("slow", {})).status == "ok"  # 0: no budget


def test_a_case_needing_more_memory_than_is_free_is_skipped_before_allocating(cpu_backend, make_runner, monkeypatch):
    prepared = []

    class Big(Gemm):
        def device_bytes(self, case, backend):
            return 22 * 2**30

        def prepare(self, case, backend):
            prepared.append(case)
            return super().prepare(case, backend)

    monkeypatch.setattr(cpu_backend, "free_memory_bytes", lambda: int(14.5 * 2**30))
    rec = make_runner(cpu_backend).run_case(Big(), gemm_case("square", "fp32", 64, 64, 64, "x"))
    assert rec.status == "skipped" and rec.reason == "needs 22.0 GiB of device memory, 14.5 GiB free"
    assert prepared == []


def test_gemm_declares_its_memory_including_a_chunked_reference(cpu_backend):
    from accelbench.accuracy import REFERENCE_CHUNK_BYTES
    case = gemm_case("square", "bf16", 16384, 16384, 16384, "16384")
    need = Gemm().device_bytes(case, cpu_backend)
    operands = 3 * 16384**2 * 2
    assert operands < need <= operands + 4 * 16384**2 + 8 * 16384**2 + REFERENCE_CHUNK_BYTES


@pytest.mark.parametrize("suite, skipped", [("quick", True), ("standard", False)])
def test_emulated_dtypes_are_left_out_of_quick_and_labelled_elsewhere(cpu_backend, make_runner, monkeypatch,
                                                                        suite, skipped):
    why = "bf16 matmul is software-emulated on this CPU (test)"
    monkeypatch.setattr(cpu_backend, "emulated_matmul_dtypes", lambda: {"bf16": why})
    rec = make_runner(cpu_backend, suite=suite, skip_emulated=suite == "quick").run_case(
        Gemm(), gemm_case("square", "bf16", 32, 32, 32, "x"))
    if skipped:
        assert rec.status == "skipped" and rec.reason.startswith(why) and "--suite standard" in rec.reason
    else:
        assert rec.status == "ok" and rec.facts["emulated"] == why


def test_a_case_predicted_far_over_the_budget_is_skipped_without_a_call(cpu_backend, make_runner):
    from dataclasses import replace
    calls = []

    class Counting(Gemm):
        def matmul(self, a, b, out):
            calls.append(a.shape[0])
            return super().matmul(a, b, out)

    runner = make_runner(cpu_backend, suite="quick")
    # 10 ms: a 64^3 call stays under it on a busy machine too.
    runner.options = replace(runner.options, policy=replace(runner.options.policy, call_budget_s=1e-2))
    small = runner.run_case(Counting(), gemm_case("square", "fp32", 64, 64, 64, "64"))
    assert small.status == "ok"
    calls.clear()
    # 2048^3 is 32768x the work of 64^3: at 64^3's rate, far past 4x a 10 ms budget.
    big = runner.run_case(Counting(), gemm_case("square", "fp32", 2048, 2048, 2048, "2048"))
    assert big.status == "skipped" and "would take about" in big.reason and "fp32/square/64" in big.reason
    assert calls == []

import pytest
import torch

from accelbench.benchmark import Case
from accelbench.microbench import membw
from accelbench.microbench.membw import BYTES_PER_SAMPLE, KERNELS, MemoryBandwidth, bytes_moved
from accelbench.microbench.transfer import Transfer


@pytest.mark.parametrize("kernel, arrays", [("copy", 2), ("mul", 2), ("add", 3), ("triad", 3), ("dot", 2),
                                            ("read", 1), ("write", 1)])
def test_bytes_are_counted_the_babelstream_way(kernel, arrays):
    assert bytes_moved(kernel, 1000, 4) == arrays * 1000 * 4
    assert bytes_moved(kernel, 1000, 2) == arrays * 1000 * 2


def case(impl="torch", kernel="triad", dtype="fp32", size=2**20):
    return Case(f"{impl}/{kernel}/{dtype}/{size}", {"impl": impl, "kernel": kernel, "dtype": dtype, "array_bytes": size})


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_every_torch_kernel_passes_its_check_and_counts_repeats(cpu_backend, make_runner, kernel):
    record = make_runner(cpu_backend).run_case(MemoryBandwidth(), case(kernel=kernel))
    assert record.status == "ok", record.reason
    repeats = record.facts["repeats"]
    assert repeats == max(1, BYTES_PER_SAMPLE // bytes_moved(kernel, 2**18, 4))
    gbps = record.metric("gbps").value
    assert gbps == pytest.approx(repeats * bytes_moved(kernel, 2**18, 4) / record.stats.median / 1e9)
    assert record.method.cache.startswith("not flushed: this case measures cache-resident")
    share = record.metric("launch_overhead_share")
    assert 0 < share.value <= 100 and f"{repeats} launches" in share.note  # a 1 MiB array: the overhead says so


def test_verification_catches_a_kernel_writing_wrong_values(cpu_backend, make_runner, monkeypatch):
    def off_by_one_element(kernel, a, b, c):
        out = torch.add(a, b, alpha=membw.SCALAR, out=c)
        out[-1] += 1.0
        return out

    monkeypatch.setattr(membw, "torch_stream", off_by_one_element)
    record = make_runner(cpu_backend).run_case(MemoryBandwidth(), case(kernel="triad"))
    assert record.status == "failed" and "wrong result" in record.reason and record.metric("gbps") is None


def test_verification_catches_an_unwritten_element(cpu_backend, make_runner, monkeypatch):
    def skips_last(kernel, a, b, c):
        c[:-1].copy_(a[:-1])  # the last element keeps its NaN poison
        return c

    monkeypatch.setattr(membw, "torch_stream", skips_last)
    record = make_runner(cpu_backend).run_case(MemoryBandwidth(), case(kernel="copy"))
    assert record.status == "failed"


def test_sweep_sizes_cross_the_cache_and_reach_gibibytes():
    sizes = sorted({c.params["array_bytes"] for c in MemoryBandwidth().cases("standard")})
    assert sizes == [2**e for e in range(16, 33, 2)]  # 64 KiB .. 4 GiB per array
    assert {c.params["impl"] for c in MemoryBandwidth().cases("quick")} == {"torch", "triton"}
    assert {c.params["kernel"] for c in MemoryBandwidth().cases("standard")} == set(KERNELS)


def test_facts_say_whether_the_data_was_cache_resident(cpu_backend, monkeypatch):
    monkeypatch.setattr(cpu_backend, "cache_bytes", lambda: 4 * 2**20)
    small = MemoryBandwidth().prepare(case(kernel="copy", size=2**20), cpu_backend)
    big = MemoryBandwidth().prepare(case(kernel="copy", size=2**23), cpu_backend)
    assert small.facts["cache_resident"] and small.ceiling is None
    assert not big.facts["cache_resident"] and big.ceiling == "membw.device"  # 16 MiB >= 4 x 4 MiB


def test_triton_cases_are_skipped_without_a_gpu(cpu_backend, make_runner):
    record = make_runner(cpu_backend).run_case(MemoryBandwidth(), case(impl="triton"))
    assert record.status == "skipped" and "Triton" in record.reason


def test_transfers_are_skipped_on_cpu_with_a_reason(cpu_backend, make_runner):
    runner = make_runner(cpu_backend)
    for c in Transfer().cases("quick"):
        record = runner.run_case(Transfer(), c)
        assert record.status == "skipped" and "no separate device memory" in record.reason


def test_transfer_cases_cover_directions_and_host_memory():
    params = {(c.params["direction"], c.params["host_memory"]) for c in Transfer().cases("standard")}
    assert params == {("h2d", "pinned"), ("h2d", "pageable"), ("d2h", "pinned"), ("d2h", "pageable"),
                      ("d2d", "device")}


def test_link_transfers_are_not_compared_with_memory_bandwidth():
    from accelbench.benchmark import Work
    from accelbench.metrics import performance_metrics
    from accelbench.specs import lookup_spec
    from accelbench.stats import SampleStats
    stats = SampleStats.from_samples([1e-3])
    h200 = lookup_spec("NVIDIA H200")
    link = {m.name: m for m in performance_metrics(Work(bytes=1e9, memory="link"), stats, h200)}
    cache = {m.name: m for m in performance_metrics(Work(bytes=1e9, memory="cache"), stats, h200)}
    hbm = {m.name: m.value for m in performance_metrics(Work(bytes=1e9), stats, h200)}
    assert "bw_util" not in link and "host link" in link["gbps"].note
    assert "bw_util" not in cache and cache["gbps"].note.startswith("cache bandwidth")
    assert hbm["bw_util"] == pytest.approx(100 * 1e12 / 4.8e12)


def test_only_working_sets_of_4x_the_cache_are_device_memory(cpu_backend, monkeypatch):
    monkeypatch.setattr(cpu_backend, "cache_bytes", lambda: 4 * 2**20)
    levels = {size: MemoryBandwidth().prepare(case(kernel="copy", size=size), cpu_backend)
              for size in (2**20, 2**22, 2**23)}  # working sets 2, 8 and 16 MiB against 4 MiB
    assert [w.work.memory for w in levels.values()] == ["cache", "cache", "device"]
    assert [w.ceiling for w in levels.values()] == [None, None, "membw.device"]
    assert levels[2**22].facts["memory_level"] == "cache" and not levels[2**22].facts["cache_resident"]

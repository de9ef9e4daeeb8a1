"""The wrong-kernel catalogue: kernels that skip data, read half, answer a constant, drop a tile,
transpose an operand or forget an element. Every check must reject each of them (failed, no
figure) through the real harness, at the smallest and largest size of the quick sweep and at one
size past 64 MiB; the right kernels must pass at the same sizes. (The stale-graph-input case is in
test_harness_gemm.py, beside the graph choice it exercises.)"""
import math

import pytest
import torch

from accelbench.microbench import membw
from accelbench.microbench.fp8 import Fp8Gemm, _case
from accelbench.microbench.gemm import Gemm, gemm_case
from accelbench.microbench.membw import MemoryBandwidth

QUICK = sorted({c.params["array_bytes"] for c in MemoryBandwidth().cases("quick")})
SIZES = [QUICK[0], QUICK[-1], 256 * 2**20]  # 64 KiB, 16 MiB, and one past 64 MiB


def stream_case(kernel, dtype, size):
    return membw.Case(f"torch/{kernel}/{dtype}/{size}",
                      {"impl": "torch", "kernel": kernel, "dtype": dtype, "array_bytes": size})


READ_MUTANTS = {
    "read skips the last eighth": lambda a, b: a[: a.numel() - a.numel() // 8].sum(),
    "read never touches its input": lambda a, b: torch.zeros((), dtype=a.dtype),
    "read reads half and doubles it": lambda a, b: a[::2].sum() * 2,
    "dot reads half and doubles it": lambda a, b: (a[::2] * b[::2]).sum() * 2,
    "dot answers a constant": lambda a, b: torch.zeros((), dtype=a.dtype),
}


def patched_stream(monkeypatch, kernel_name, fn):
    real = membw.torch_stream

    def stream(kernel, a, b, c):
        return fn(a, b) if kernel == kernel_name else real(kernel, a, b, c)

    monkeypatch.setattr(membw, "torch_stream", stream)


def assert_rejected(record):
    assert record.status == "failed", (record.case_id, record.accuracy)
    assert "wrong result" in record.reason
    assert record.metrics == [] and record.samples_s == [] and record.stats is None


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
@pytest.mark.parametrize("mutant", list(READ_MUTANTS))
def test_wrong_reductions_are_rejected(cpu_backend, make_runner, monkeypatch, mutant, dtype, size):
    kernel = mutant.split()[0]
    patched_stream(monkeypatch, kernel, READ_MUTANTS[mutant])
    assert_rejected(make_runner(cpu_backend).run_case(MemoryBandwidth(), stream_case(kernel, dtype, size)))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
@pytest.mark.parametrize("kernel", ["read", "dot", "copy", "triad"])
def test_right_stream_kernels_pass_at_the_same_sizes(cpu_backend, make_runner, kernel, dtype, size):
    record = make_runner(cpu_backend).run_case(MemoryBandwidth(), stream_case(kernel, dtype, size))
    assert record.status == "ok", record.reason
    assert record.accuracy.max_abs_tolerance is not None


def copy_but_last(a, b, c):
    c[:-1].copy_(a[:-1])
    return c


def copy_half(a, b, c):
    c[: c.numel() // 2].copy_(a[: a.numel() // 2])
    return c


def triad_off_in_one(a, b, c):
    torch.add(a, b, alpha=membw.SCALAR, out=c)
    c[c.numel() // 3] += 1.0
    return c


ELEMENTWISE_MUTANTS = {
    "copy leaves one element unwritten": copy_but_last,
    "copy writes half": copy_half,
    "triad is off in one element": triad_off_in_one,
}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
@pytest.mark.parametrize("mutant", list(ELEMENTWISE_MUTANTS))
def test_wrong_elementwise_kernels_are_rejected(cpu_backend, make_runner, monkeypatch, mutant, dtype, size):
    kernel = mutant.split()[0]
    real = membw.torch_stream
    monkeypatch.setattr(membw, "torch_stream", lambda k, a, b, c: ELEMENTWISE_MUTANTS[mutant](a, b, c)
                        if k == kernel else real(k, a, b, c))
    assert_rejected(make_runner(cpu_backend).run_case(MemoryBandwidth(), stream_case(kernel, dtype, size)))


class Bf16Gemm(Gemm):
    """A right bf16 GEMM (fp32 products and sums, rounded once to bf16), fast on any CPU;
    subclasses break it one way each."""

    def device_bytes(self, case, backend):
        return None

    def matmul(self, a, b, out):
        return out.copy_(torch.matmul(a.float(), b.float()))


class ZeroedTile(Bf16Gemm):
    tile = 16

    def matmul(self, a, b, out):
        super().matmul(a, b, out)
        out[100:100 + self.tile, 200:200 + self.tile] = 0
        return out


class ZeroedBigTile(ZeroedTile):
    tile = 64


class UnwrittenTile(Bf16Gemm):
    def matmul(self, a, b, out):
        full = torch.matmul(a.float(), b.float()).to(out.dtype)
        out[16:].copy_(full[16:])
        out[:16, 16:].copy_(full[:16, 16:])  # the top-left 16x16 tile keeps its poison
        return out


class TransposedOperand(Bf16Gemm):
    def matmul(self, a, b, out):
        return out.copy_(torch.matmul(a.float(), b.float().t()))


@pytest.mark.parametrize("bench, shape", [
    (ZeroedTile(), (2048, 2048, 2048)),  # relative Frobenius error 0.008: inside bf16's 1e-2
    (ZeroedBigTile(), (8192, 64, 8192)),  # 64x64 of 67M elements
    (UnwrittenTile(), (128, 128, 128)),
    (TransposedOperand(), (1024, 1024, 1024)),
])
def test_wrong_gemms_are_rejected(cpu_backend, make_runner, bench, shape):
    m, k, n = shape
    assert_rejected(make_runner(cpu_backend).run_case(bench, gemm_case("square", "bf16", m, k, n, "x")))


@pytest.mark.parametrize("shape", [(2048, 2048, 2048), (8192, 64, 8192)])
def test_a_right_bf16_gemm_passes_the_same_checks(cpu_backend, make_runner, shape):
    m, k, n = shape
    record = make_runner(cpu_backend).run_case(Bf16Gemm(), gemm_case("square", "bf16", m, k, n, "x"))
    assert record.status == "ok", record.reason
    assert record.accuracy.max_abs_error <= record.accuracy.max_abs_tolerance


def test_an_fp8_kernel_dropping_a_tile_is_rejected(cpu_backend, make_runner, monkeypatch):
    from accelbench.fp8.executors.base import EmulatedExecutor
    real = EmulatedExecutor.gemm

    def drops_a_tile(self, qa, w, mode, out):
        real(self, qa, w, mode, out)
        out[:16, :16] = 0
        return out

    monkeypatch.setattr(EmulatedExecutor, "gemm", drops_a_tile)
    assert_rejected(make_runner(cpu_backend).run_case(Fp8Gemm(), _case("tensor", "auto", "gemm", "normal",
                                                                       (512, 1024, 512))))


def test_the_element_bound_is_what_catches_a_small_missing_tile(cpu_backend, make_runner):
    record = make_runner(cpu_backend).run_case(ZeroedTile(), gemm_case("square", "bf16", 2048, 2048, 2048, "x"))
    acc = record.accuracy
    assert acc.rel_fro_error < acc.tolerance  # the norm alone would have let it through
    assert acc.max_abs_error > 10 * acc.max_abs_tolerance and not math.isnan(acc.max_abs_error)

import math

import pytest
import torch

from accelbench.accuracy import ErrorMeter, compare, gemm_max_abs_tolerance, matmul_meter


def test_a_chunked_reference_agrees_with_the_plain_one():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(300, 70, generator=g), torch.randn(70, 50, generator=g)
    out = (a @ b).to(torch.bfloat16)
    plain = compare(out, a.double() @ b.double(), 1e-2, "plain")
    chunked = matmul_meter(out, a, b, torch.device("cpu"), chunk_bytes=8 * (70 + 3 * 50) * 7).result(1e-2, "chunked")
    assert chunked.rel_fro_error == pytest.approx(plain.rel_fro_error, rel=1e-12)
    assert chunked.max_abs_error == plain.max_abs_error and chunked.sqnr_db == pytest.approx(plain.sqnr_db)


def test_non_finite_elements_fail_and_are_counted():
    meter = ErrorMeter()
    meter.add(torch.tensor([1.0, math.nan, 3.0]), torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    acc = meter.result(1.0, "x")
    assert not acc.passed and "1 non-finite" in acc.reference and acc.rel_fro_error is None


def test_the_element_bound_grows_with_k_and_precision():
    meter = ErrorMeter()
    meter.add(torch.zeros(4), torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64))
    bf16 = gemm_max_abs_tolerance(meter, torch.bfloat16, 4096)
    fp32 = gemm_max_abs_tolerance(meter, torch.float32, 4096)
    tf32 = gemm_max_abs_tolerance(meter, torch.float32, 4096, input_roundoff=2.0**-11)
    assert fp32 < min(tf32, bf16) and max(tf32, bf16) < 0.1  # far below one missing element's error (1.0)
    assert gemm_max_abs_tolerance(meter, torch.float32, 16384) > fp32

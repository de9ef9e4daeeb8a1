"""The GEMM group on different input values (zeros, small-range uniform, normal, full-range)."""
import math

import pytest
import torch

from accelbench.distributions import VALUE_KINDS, draw_values
from accelbench.microbench.gemm import Gemm, gemm_case


def test_every_suite_has_the_values_group_and_other_cases_say_their_data_is_normal():
    for suite in ("quick", "standard"):
        cases = Gemm().cases(suite)
        kinds = {c.params["values"] for c in cases if c.params["group"] == "values"}
        assert kinds == set(VALUE_KINDS)
        assert {c.params["values"] for c in cases if c.params["group"] != "values"} == {"normal"}
    standard = {c.case_id for c in Gemm().cases("standard")}
    assert {"bf16/values/4096-zeros", "bf16/values/8192-full-range"} <= standard


def test_each_kind_draws_what_it_says():
    gen = torch.Generator().manual_seed(0)
    draw = {k: draw_values(k, (256, 256), gen, torch.device("cpu")) for k in VALUE_KINDS}
    assert torch.count_nonzero(draw["zeros"]) == 0
    assert draw["uniform-small"].abs().max() <= 1e-3 and draw["uniform-small"].std() > 5e-4
    assert abs(float(draw["normal"].std()) - 1) < 0.02
    exponents = torch.log2(draw["full-range"].abs())
    assert float(exponents.max() - exponents.min()) > 40 and (draw["full-range"] < 0).float().mean() == pytest.approx(0.5, abs=0.02)
    with pytest.raises(ValueError, match="unknown input values"):
        draw_values("ones", (2, 2), gen, torch.device("cpu"))


@pytest.mark.parametrize("kind", VALUE_KINDS)
def test_each_kind_is_checked_and_timed(cpu_backend, make_runner, kind):
    rec = make_runner(cpu_backend).run_case(Gemm(), gemm_case("values", "fp32", 64, 64, 64, f"64-{kind}", kind))
    assert rec.status == "ok", rec.reason
    assert rec.metric("tflops").value > 0 and rec.params["values"] == kind
    assert ("exact" in rec.accuracy.reference) == (kind == "zeros")


def test_a_kernel_that_writes_nothing_fails_even_on_zeros(cpu_backend, make_runner):
    class Lazy(Gemm):
        def matmul(self, a, b, out):
            return out  # the poisoned (NaN) output, never written

    rec = make_runner(cpu_backend).run_case(Lazy(), gemm_case("values", "fp32", 64, 64, 64, "64-zeros", "zeros"))
    assert rec.status == "failed" and "wrong result" in rec.reason
    assert not math.isnan(rec.accuracy.rel_fro_error or 0.0)

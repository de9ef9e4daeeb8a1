"""Probe: is cuBLAS block-wise FP8 (torch._scaled_mm, 1x128 x 128x128) right for a given M, K/128?
Prints one line per shape: relative error against the fp64 product of the quantized operands."""
import torch

from accelbench.accuracy import compare
from accelbench.fp8_engines import CudaEngine, weight_scheme
from accelbench.backends import resolve_backend
from accelbench.quant import MODES, quantize

backend = resolve_backend("cuda")
engine = CudaEngine(backend, "auto")
mode = MODES["block"]
for m, k, n in [(256, 256, 256), (256, 384, 256), (256, 512, 256), (256, 640, 256), (256, 1024, 256),
                (258, 512, 256), (512, 512, 512)]:
    a = torch.randn(m, k, device="cuda").to(torch.bfloat16)
    w = quantize(torch.randn(n, k, device="cuda").to(torch.bfloat16), weight_scheme(mode))
    qa = quantize(a, mode.a)
    ref = qa.dequantize(torch.float64) @ w.dequantize(torch.float64).t()
    out = engine.gemm(qa, w, mode, torch.empty(m, n, dtype=torch.bfloat16, device="cuda"))
    torch.cuda.synchronize()
    acc = compare(out, ref, 1e-2, "")
    print(f"M={m} K={k} (K/128={k // 128}) N={n}: relative error {acc.rel_fro_error:.3g} {'ok' if acc.passed else 'WRONG'}")

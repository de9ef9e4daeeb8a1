"""Probe: the per-tensor amax pass of 8192 x 8192 bf16 two ways on one GPU (median of do_bench, L2
flushed): Triton partial maxima, and PyTorch's inf-norm reduction. Both must agree exactly first.
Usage: python3 scripts/probe_amax.py"""
import torch
import triton
import triton.testing

from accelbench.kernels import fp8 as k

x = torch.randn(8192, 8192, device="cuda").to(torch.bfloat16)
n = x.numel()
def partials():
    p = torch.empty(triton.cdiv(n, 8192), dtype=torch.float32, device="cuda")
    k._block_max[(p.numel(),)](x, p, n, BLOCK=8192, num_warps=8)
    a = torch.empty(1, dtype=torch.float32, device="cuda")
    k._max_rows[(1,)](p, a, p.numel(), BLOCK=1024)
    return a
def norm():
    return torch.linalg.vector_norm(x, float("inf"), dtype=torch.float32)
assert torch.equal(partials().reshape(()), norm().reshape(())) and norm().item() == x.float().abs().max().item()
for name, fn in (("triton partial maxima", partials), ("torch.linalg.vector_norm(inf)", norm)):
    us = triton.testing.do_bench(fn, warmup=50, rep=300, return_mode="median") * 1e3
    print(f"amax of 8192x8192 bf16, {name}: {us:.1f} us, {2 * n / us / 1e3:.0f} GB/s")

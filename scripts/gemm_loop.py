"""A competing load for fleet tests: bf16 8192^3 products on the current CUDA device for SECONDS.

    python3 scripts/gemm_loop.py SECONDS        (pick the card with CUDA_VISIBLE_DEVICES)
"""
import sys
import time

import torch


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn_like(a)
    end, products = time.time() + float(argv[0]), 0
    while time.time() < end:
        for _ in range(20):
            a @ b
        torch.cuda.synchronize()
        products += 20
    print(f"gemm loop: {products} products of 8192^3 in bf16")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

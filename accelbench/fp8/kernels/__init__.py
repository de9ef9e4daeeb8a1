"""Triton and Gluon FP8 kernels: fused quantizers (quantize.py), block-scaled GEMMs (quantize.py's
single-partition one, block_gemm_ws.py's warp-specialized one for Hopper), the decode GEMV
(gemv.py). Importing a kernel module needs triton; tests/gpu checks each against the reference."""

"""FP8, in one package: what a format, a scale and a recipe are (formats.py, data), what they mean
(reference.py: the one implementation of every scale rounding and policy, in torch ops), the fused
activation quantizers a benchmark times (fused.py; their Triton kernels and the FP8 GEMM kernels in
kernels/), and who runs an FP8 GEMM on each backend (executors/, one module per backend family).

The benchmarks that use it live with the other benchmarks: microbench/fp8.py (scaling modes, speed
and error) and e2e/decode/fp8_linear.py (FP8 projections in the decode loop)."""

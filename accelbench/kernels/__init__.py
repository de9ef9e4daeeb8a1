"""Triton kernels used by the benchmarks on GPU backends. Importing a kernel module needs triton."""

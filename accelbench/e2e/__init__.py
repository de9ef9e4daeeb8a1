"""End-to-end benchmarks (LLM decode): one module per benchmark, discovered automatically."""

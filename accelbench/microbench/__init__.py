"""Microbenchmarks: one module per benchmark, discovered automatically."""

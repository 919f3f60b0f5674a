"""Experiments that run training: the demo, sweeps of runs, the step-cost benchmark, and what the
benchmarks of ``benchmarks/`` share (``benchmarking``)."""

"""Experiments that run training: the demo, sweeps of runs, and the step-cost benchmark."""

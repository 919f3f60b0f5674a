"""kdforaa: strong per-sample augmentation with knowledge distillation that circumvents its outliers."""

from kdforaa.openmp import prefer_short_spin

__version__ = "0.1.0"

# before anything imports torch: OpenMP reads its wait policy once, when torch loads it
prefer_short_spin()

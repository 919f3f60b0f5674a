"""kdforaa: strong per-sample augmentation with knowledge distillation that circumvents its outliers."""

__version__ = "0.1.0"

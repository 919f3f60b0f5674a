"""Data sets (Fashion-MNIST, MNIST, CIFAR-10/100, image folders), batching and downloads."""

from kdforaa.data.datasets import Dataset, InMemoryDataset, data_home, load_dataset
from kdforaa.data.fetch import fetch_dataset
from kdforaa.data.folder import ImageFolder
from kdforaa.data.loader import batches, normalize

__all__ = [
    "Dataset",
    "ImageFolder",
    "InMemoryDataset",
    "batches",
    "data_home",
    "fetch_dataset",
    "load_dataset",
    "normalize",
]

import os
import pickle

import numpy as np
import pytest
import torch

from fakedata import CIFAR_FOLDERS, cifar_pickle_bytes, write_cifar
from kdforaa.config import DataConfig
from kdforaa.data.cifar import load_pickle, read_cifar
from kdforaa.data.datasets import load_dataset
from kdforaa.errors import BadInput


class _RunsShell:
    """Pickles to ``os.system(command)``: what a tampered data file would do."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Evals:
    def __reduce__(self):
        return (eval, ("1 + 1",))


@pytest.mark.parametrize("variant", ["cifar10", "cifar100"])
@pytest.mark.parametrize("python2", [True, False], ids=["official-py2-pickles", "numpy2-pickles"])
def test_reads_both_variants_and_pickle_styles(make_cifar, variant, python2):
    fake = make_cifar(variant, n_train=23, n_test=7, python2=python2)
    for split, (images, labels) in (("train", fake.train), ("test", fake.test)):
        ds = load_dataset(DataConfig(name=variant, root=str(fake.root)), split)
        assert ds.data.dtype == torch.uint8 and ds.labels.dtype == torch.int64
        assert torch.equal(ds.data, torch.from_numpy(images))
        assert torch.equal(ds.labels, torch.from_numpy(labels))
        assert ds.num_classes == (10 if variant == "cifar10" else 100)
        assert ds.classes[3] == "class_3"
        assert ds.in_channels == 3 and ds.image_size == (32, 32)


def test_channel_planes_are_rgb_in_order(make_cifar):
    """A row of the official files is 1024 red, then 1024 green, then 1024 blue bytes."""
    fake = make_cifar()
    folder = fake.root / CIFAR_FOLDERS["cifar10"]
    row = np.concatenate([np.full(1024, 10), np.full(1024, 20), np.full(1024, 30)]).astype(np.uint8)
    batch = {"labels": [4], "data": row[None]}
    (folder / "test_batch").write_bytes(cifar_pickle_bytes(batch))
    images, labels, _ = read_cifar(folder, "cifar10", "test")
    assert images.shape == (1, 3, 32, 32)
    assert [int(images[0, c].min()) for c in range(3)] == [10, 20, 30]
    assert [int(images[0, c].max()) for c in range(3)] == [10, 20, 30]
    assert labels.tolist() == [4]


@pytest.mark.parametrize("where", ["parent", "extracted", "fetch-layout"])
def test_root_may_be_the_extracted_folder_or_its_parent(tmp_path, where):
    parent = tmp_path / "cifar10" if where == "fetch-layout" else tmp_path
    write_cifar(parent, n_train=5, n_test=5)
    root = {"parent": tmp_path, "extracted": tmp_path / "cifar-10-batches-py", "fetch-layout": tmp_path}[
        where
    ]
    assert len(load_dataset(DataConfig(name="cifar10", root=str(root)), "train")) == 5


def test_limit_keeps_first_training_samples(make_cifar):
    fake = make_cifar(n_train=20)
    ds = load_dataset(DataConfig(name="cifar10", root=str(fake.root), limit=6), "train")
    assert torch.equal(ds.data, torch.from_numpy(fake.train[0][:6]))


@pytest.mark.parametrize("payload", [_RunsShell, _Evals], ids=["os.system", "eval"])
def test_malicious_pickle_is_refused_without_running(tmp_path, payload):
    marker = tmp_path / "pwned"
    obj = payload(f"touch {marker}") if payload is _RunsShell else payload()
    for protocol in (2, 4):
        path = tmp_path / f"evil{protocol}"
        path.write_bytes(pickle.dumps({"data": obj}, protocol=protocol))
        with pytest.raises(BadInput, match="is not allowed"):
            load_pickle(path)
    assert not marker.exists()


def test_malicious_batch_in_a_data_set_is_refused(tmp_path, make_cifar):
    fake = make_cifar()
    marker = tmp_path / "pwned"
    evil = pickle.dumps({"labels": [0], "data": _RunsShell(f"touch {marker}")}, protocol=2)
    (fake.root / CIFAR_FOLDERS["cifar10"] / "data_batch_3").write_bytes(evil)
    with pytest.raises(BadInput, match="data_batch_3"):
        load_dataset(DataConfig(name="cifar10", root=str(fake.root)), "train")
    assert not marker.exists()


def test_truncated_pickle_names_the_file(make_cifar):
    fake = make_cifar()
    path = fake.root / CIFAR_FOLDERS["cifar10"] / "data_batch_2"
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(BadInput, match=r"data_batch_2 \(truncated"):
        load_dataset(DataConfig(name="cifar10", root=str(fake.root)), "train")


def test_missing_batch_names_the_file_and_layout(make_cifar):
    fake = make_cifar("cifar100")
    (fake.root / CIFAR_FOLDERS["cifar100"] / "test").unlink()
    with pytest.raises(
        BadInput, match=r"missing file .*cifar-100-python/test: expected .*cifar-100-python/\{train"
    ):
        load_dataset(DataConfig(name="cifar100", root=str(fake.root)), "test")


def test_no_cifar_files_at_root(tmp_path):
    with pytest.raises(BadInput, match=r"cifar10 not found in .*kdforaa data fetch cifar10"):
        load_dataset(DataConfig(name="cifar10", root=str(tmp_path)), "train")


def test_label_count_mismatch(make_cifar):
    fake = make_cifar()
    batch = {"labels": [1, 2, 3], "data": np.zeros((2, 3072), np.uint8)}
    (fake.root / CIFAR_FOLDERS["cifar10"] / "test_batch").write_bytes(cifar_pickle_bytes(batch))
    with pytest.raises(BadInput, match="test_batch: 3 labels for 2 images"):
        load_dataset(DataConfig(name="cifar10", root=str(fake.root)), "test")


def test_wrong_variant_keys_and_label_range(make_cifar):
    fake = make_cifar()
    folder = fake.root / CIFAR_FOLDERS["cifar10"]
    (folder / "test_batch").write_bytes(
        cifar_pickle_bytes({"fine_labels": [0], "data": np.zeros((1, 3072), np.uint8)})
    )
    with pytest.raises(BadInput, match="no 'labels' entry"):
        read_cifar(folder, "cifar10", "test")
    (folder / "test_batch").write_bytes(
        cifar_pickle_bytes({"labels": [10], "data": np.zeros((1, 3072), np.uint8)})
    )
    with pytest.raises(BadInput, match=r"labels outside 0..9"):
        read_cifar(folder, "cifar10", "test")

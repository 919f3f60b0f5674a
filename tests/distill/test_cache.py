"""The soft-label cache against the online teacher, on real Fashion-MNIST and a real resnet8 checkpoint."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from foreign_models import foreign_model, save_repdistiller_checkpoint
from kdforaa.augment.pipeline import build_augment
from kdforaa.augment.random import make_keys
from kdforaa.checkpoint import save_checkpoint
from kdforaa.cli import main
from kdforaa.config import RunConfig, config_to_dict, load_config
from kdforaa.data.datasets import load_dataset
from kdforaa.data.loader import normalize
from kdforaa.distill import cache as cache_module
from kdforaa.distill.cache import FILL_MARGIN, SoftLabelCache, build_cache, identify
from kdforaa.distill.losses import kd, topk_kd
from kdforaa.distill.teacher import Teacher, load_teacher
from kdforaa.errors import BadInput
from kdforaa.models.registry import build_model

BASE = [
    "seed=3",
    "data.limit=96",
    "model.name=resnet8",
    "augment.policy=randaugment",
    "augment.magnitude=9",
    "train.epochs=2",
]
K = 3
SAMPLES = torch.tensor([95, 3, 50, 0, 41, 7, 64, 88])


def config(*overrides: str) -> RunConfig:
    return load_config(None, [*BASE, *overrides])


def save_teacher(path: Path, seed: int) -> Path:
    """A random-init resnet8 with non-trivial BatchNorm statistics, saved as a run checkpoint."""
    torch.manual_seed(seed)
    model = build_model("resnet8", 10, 1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    state = {
        "model": model.state_dict(),
        "config": config_to_dict(config()),
        "model_name": "resnet8",
        "num_classes": 10,
        "in_channels": 1,
    }
    save_checkpoint(state, path)
    return path


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_teacher(tmp_path_factory.mktemp("teacher") / "best.pt", seed=0)


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory, teacher_file: Path) -> Path:
    """Two epochs, top-3, batches of 40 (the last one short)."""
    out = tmp_path_factory.mktemp("cache") / "c"
    build_cache(config(), str(teacher_file), out, epochs=2, k=K, batch_size=40, progress=False)
    return out


def replay(cache: SoftLabelCache, epoch: int, indices: torch.Tensor) -> torch.Tensor:
    """The cache's logits for ``indices`` in ``epoch``, through the call a live teacher answers too."""
    view = torch.zeros(len(indices), 1, 28, 28)  # a cache does not look at the images, only at their device
    logits, features = cache.logits(view, epoch=epoch, indices=indices)
    assert features is None
    return logits


def online_logits(cfg: RunConfig, teacher_file: Path, epoch: int, indices: torch.Tensor) -> torch.Tensor:
    """The teacher's logits on the images training sees, rebuilt from the per-sample keys."""
    dataset = load_dataset(cfg.data, "train")
    teacher = load_teacher(str(teacher_file), dataset.num_classes, dataset.in_channels, "cpu")
    images = dataset.images(indices)
    if cfg.teacher.input == "augmented":
        augment = build_augment(cfg.augment, *dataset.image_size)
        images = augment.apply(images, augment.sample(make_keys(cfg.seed, epoch, indices)))
    return teacher(normalize(images, dataset.mean, dataset.std))


def assert_fp16_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("epoch", [0, 1])
def test_cached_top_k_is_the_online_teacher_on_the_replayed_augmentation(cached, teacher_file, epoch) -> None:
    cache = SoftLabelCache.open(cached, config(), str(teacher_file))
    online = online_logits(config(), teacher_file, epoch, SAMPLES)
    replayed = replay(cache, epoch, SAMPLES)
    assert replayed.shape == (len(SAMPLES), 10) and replayed.dtype == torch.float32
    top = online.topk(K, dim=1)
    assert torch.equal(replayed.topk(K, dim=1).indices.sort(1).values, top.indices.sort(1).values)
    assert_fp16_close(replayed.gather(1, top.indices), top.values)
    outside = torch.ones_like(replayed, dtype=torch.bool).scatter_(1, top.indices, False)
    floor = replayed.gather(1, top.indices).min(1, keepdim=True).values - FILL_MARGIN
    assert torch.equal(replayed[outside].view(len(SAMPLES), -1), floor.expand(-1, 10 - K))


def test_epochs_replay_different_augmentations(cached, teacher_file) -> None:
    cache = SoftLabelCache.open(cached, config(), str(teacher_file))
    assert not torch.allclose(replay(cache, 0, SAMPLES), replay(cache, 1, SAMPLES))


@pytest.mark.parametrize("k", [1, 2, K])
def test_topk_kd_on_cached_logits_equals_topk_kd_on_the_online_teacher(cached, teacher_file, k) -> None:
    cache = SoftLabelCache.open(cached, config(), str(teacher_file))
    student = torch.randn(len(SAMPLES), 10, generator=torch.Generator().manual_seed(k))
    online = online_logits(config(), teacher_file, 1, SAMPLES)
    expected = topk_kd(student, online, k, temperature=2.0)
    assert_fp16_close(topk_kd(student, replay(cache, 1, SAMPLES), k, temperature=2.0), expected)


def test_k_at_least_the_class_count_keeps_every_logit(tmp_path, teacher_file) -> None:
    cfg = config("train.epochs=1")
    build_cache(cfg, str(teacher_file), tmp_path, epochs=1, k=50, progress=False)
    cache = SoftLabelCache.open(tmp_path, cfg, str(teacher_file))
    assert cache.k == 10
    online = online_logits(cfg, teacher_file, 0, SAMPLES)
    replayed = replay(cache, 0, SAMPLES)
    assert_fp16_close(replayed, online)
    student = torch.randn(len(SAMPLES), 10, generator=torch.Generator().manual_seed(0))
    assert_fp16_close(kd(student, replayed), kd(student, online))


def test_epochs_with_the_policy_off_are_cached_as_training_shows_them(tmp_path, teacher_file) -> None:
    """With augment.off_last_epochs, training's last epochs see crop and flip only: so does the cache."""
    cfg = config("augment.off_last_epochs=1")
    out = tmp_path / "off"
    build_cache(cfg, str(teacher_file), out, epochs=2, k=10, batch_size=40, progress=False)
    cache = SoftLabelCache.open(out, cfg, str(teacher_file))
    mild = config("augment.policy=none")  # the same keys, the policy switched off
    assert_fp16_close(replay(cache, 0, SAMPLES), online_logits(cfg, teacher_file, 0, SAMPLES))
    assert_fp16_close(replay(cache, 1, SAMPLES), online_logits(mild, teacher_file, 1, SAMPLES))
    assert not torch.allclose(replay(cache, 1, SAMPLES), online_logits(cfg, teacher_file, 1, SAMPLES))


def test_header_and_files_record_the_cache(cached, teacher_file) -> None:
    header = json.loads((cached / "header.json").read_text())
    assert header["version"] == 1
    assert (header["k"], header["num_classes"], header["num_samples"], header["epochs"]) == (K, 10, 96, 2)
    assert header["fingerprint"] == identify(config(), str(teacher_file))["fingerprint"]
    for epoch in range(2):
        values = np.load(cached / f"epoch-{epoch:04d}.values.npy", mmap_mode="r")
        classes = np.load(cached / f"epoch-{epoch:04d}.classes.npy", mmap_mode="r")
        assert (values.dtype, values.shape) == (np.float16, (96, K))
        assert (classes.dtype, classes.shape) == (np.int16, (96, K))
        assert np.all(np.diff(values.astype(np.float32), axis=1) <= 0)  # descending
    assert not list(cached.glob(".*.tmp"))


def test_fingerprint_follows_the_teacher_inputs_and_the_teacher_bytes(tmp_path, teacher_file) -> None:
    base = identify(config(), str(teacher_file))["fingerprint"]
    for changed in (
        "augment.magnitude=10",
        "seed=4",
        "data.limit=95",
        "teacher.input=clean",
        "augment.flip=false",
    ):
        assert identify(config(changed), str(teacher_file))["fingerprint"] != base, changed
    other = save_teacher(tmp_path / "other.pt", seed=1)
    assert identify(config(), str(other))["fingerprint"] != base
    copy = shutil.copy(teacher_file, tmp_path / "copy.pt")
    unrelated_keys = (
        "train.lr=0.01",
        "model.name=resnet20",
        "data.test_limit=5",
        "distill.k=2",
        "augment.backend=torch",
    )
    for unrelated in unrelated_keys:
        assert identify(config(unrelated), str(copy))["fingerprint"] == base, unrelated


def one_line(err: BaseException | str) -> str:
    text = str(err)
    assert "\n" not in text.strip(), text
    return text


def test_open_refuses_a_cache_of_another_config_or_teacher(cached, teacher_file, tmp_path) -> None:
    with pytest.raises(BadInput) as err:
        SoftLabelCache.open(cached, config("augment.magnitude=15"), str(teacher_file))
    message = one_line(err.value)
    assert "made for another config or teacher" in message and "augment.magnitude 9.0 != 15.0" in message
    assert "kdforaa cache-teacher" in message
    other = save_teacher(tmp_path / "other.pt", seed=1)
    with pytest.raises(BadInput, match="teacher checkpoint bytes differ"):
        SoftLabelCache.open(cached, config(), str(other))


def test_open_names_a_missing_file(cached, teacher_file, tmp_path) -> None:
    broken = Path(shutil.copytree(cached, tmp_path / "broken"))
    (broken / "epoch-0001.classes.npy").unlink()
    with pytest.raises(BadInput, match="epoch-0001.classes.npy"):
        SoftLabelCache.open(broken, config(), str(teacher_file))
    (broken / "header.json").unlink()
    with pytest.raises(BadInput, match="header.json"):
        SoftLabelCache.open(broken, config(), str(teacher_file))
    with pytest.raises(BadInput, match="does not exist"):
        SoftLabelCache.open(cached, config(), str(tmp_path / "no-teacher.pt"))


def test_epochs_beyond_the_cache_are_refused_saying_how_many_are_cached(cached, teacher_file) -> None:
    with pytest.raises(BadInput, match="holds 2 epochs"):
        SoftLabelCache.open(cached, config("train.epochs=3"), str(teacher_file))
    cache = SoftLabelCache.open(cached, config(), str(teacher_file))
    with pytest.raises(BadInput, match="holds 2 epochs"):
        replay(cache, 2, SAMPLES)


def test_clean_teacher_input_is_cached_once_for_every_epoch(tmp_path, teacher_file) -> None:
    cfg = config("teacher.input=clean", "train.epochs=5")
    build_cache(cfg, str(teacher_file), tmp_path, epochs=5, k=K, progress=False)
    assert sorted(p.name for p in tmp_path.glob("epoch-*")) == [
        "epoch-0000.classes.npy",
        "epoch-0000.values.npy",
    ]
    cache = SoftLabelCache.open(tmp_path, cfg, str(teacher_file))
    online = online_logits(cfg, teacher_file, 0, SAMPLES)
    assert torch.equal(replay(cache, 0, SAMPLES), replay(cache, 4, SAMPLES))
    assert_fp16_close(replay(cache, 4, SAMPLES).gather(1, online.topk(K).indices), online.topk(K).values)


def test_resume_keeps_complete_epochs_and_redoes_an_interrupted_one(
    cached, teacher_file, tmp_path, monkeypatch
) -> None:
    """Batches of 48 here (40 in the reference cache): the cached logits do not depend on batching."""
    out, teacher = tmp_path / "c", str(teacher_file)
    build_cache(config(), teacher, out, epochs=1, k=K, batch_size=48, progress=False)
    first = (out / "epoch-0000.values.npy").stat()
    calls = []
    real_call = Teacher.__call__

    def crash_on_third_call(self, x):
        calls.append(len(x))
        if len(calls) == 3:
            raise RuntimeError("killed")
        return real_call(self, x)

    monkeypatch.setattr(Teacher, "__call__", crash_on_third_call)
    with pytest.raises(RuntimeError, match="killed"):  # epoch 1 done, dies in epoch 2's first batch
        build_cache(config(), teacher, out, epochs=3, k=K, batch_size=48, progress=False)
    assert json.loads((out / "header.json").read_text())["epochs"] == 2
    assert not (out / "epoch-0002.values.npy").exists()
    calls.clear()
    build_cache(config(), teacher, out, epochs=3, k=K, batch_size=48, progress=False)
    assert calls == [48, 48]  # epoch 2 only
    again = (out / "epoch-0000.values.npy").stat()
    assert (again.st_ino, again.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)
    resumed = SoftLabelCache.open(out, config("train.epochs=3"), teacher)
    reference = SoftLabelCache.open(cached, config(), teacher)
    everything = torch.arange(96)
    for epoch in range(2):
        assert_fp16_close(replay(resumed, epoch, everything), replay(reference, epoch, everything))


def test_build_refuses_to_extend_another_cache(cached, teacher_file) -> None:
    with pytest.raises(BadInput, match="another config or teacher.*augment.magnitude"):
        build_cache(config("augment.magnitude=10"), str(teacher_file), cached, epochs=2, k=K, progress=False)
    with pytest.raises(BadInput, match="extend it with k=3 or write the cache to another folder"):
        build_cache(config(), str(teacher_file), cached, epochs=2, k=5, progress=False)


# ------------------------------------------------------------------ command line
def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_caches_and_says_where(tmp_path, teacher_file, capsys) -> None:
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("seed: 3\ndata:\n  limit: 96\naugment:\n  policy: randaugment\n")
    out = tmp_path / "cache"
    argv = ["cache-teacher", "--config", str(cfg_file), "augment.magnitude=9", "--teacher", str(teacher_file)]
    code, stdout, _ = run_cli(capsys, *argv, "--epochs", "1", "--out", str(out), "--k", "4", "--quiet")
    assert code == 0
    assert (
        stdout.strip().splitlines()[-1].startswith("top-4 teacher logits of 96 samples x 1 epoch cached in")
    )
    assert str(out.resolve()) in stdout
    cache = SoftLabelCache.open(out, config("train.epochs=1"), str(teacher_file))
    assert (cache.k, cache.epochs) == (4, 1)


def test_build_cache_names_its_arguments_and_the_cli_its_flags(tmp_path, capsys) -> None:
    with pytest.raises(BadInput, match=r"^epochs must be at least 1, got 0$"):
        build_cache(config(), "teacher.pt", tmp_path / "c", epochs=0)
    with pytest.raises(BadInput, match=r"^batch_size must be at least 1, got 0$"):
        build_cache(config(), "teacher.pt", tmp_path / "c", epochs=1, batch_size=0)
    code, _, err = run_cli(capsys, "cache-teacher", *BASE, "--epochs", "0", "--out", str(tmp_path / "c"))
    assert code == 2 and one_line(err).strip() == "kdforaa: error: --epochs must be at least 1, got 0"
    assert not (tmp_path / "c").exists()


def test_cli_missing_teacher_is_exit_2_with_one_line(tmp_path, capsys) -> None:
    code, _, err = run_cli(capsys, "cache-teacher", *BASE, "--out", str(tmp_path / "c"), "--quiet")
    assert code == 2 and "missing --teacher" in one_line(err)
    missing = str(tmp_path / "none.pt")
    code, _, err = run_cli(capsys, "cache-teacher", *BASE, "--teacher", missing, "--out", str(tmp_path / "c"))
    assert code == 2 and "none.pt does not exist" in one_line(err)


def test_cli_mismatched_cache_is_exit_2_with_one_line(cached, teacher_file, capsys) -> None:
    argv = [
        "cache-teacher",
        *BASE,
        "seed=4",
        "--teacher",
        str(teacher_file),
        "--out",
        str(cached),
        "--k",
        "3",
    ]
    code, _, err = run_cli(capsys, *argv, "--quiet")
    assert code == 2
    assert "another config or teacher (seed 3 != 4)" in one_line(err)
    assert "Traceback" not in err


# ------------------------------------------------------------------------------ teachers from elsewhere
def test_fingerprint_of_a_kdforaa_teacher_is_what_it_was(teacher_file) -> None:
    """No teacher.model, no timm: the identity is the one caches were made with before those keys existed."""
    identity = identify(config(), str(teacher_file))
    assert set(identity) == {"inputs", "teacher_sha256", "fingerprint"}
    old = hashlib.sha256(
        json.dumps(
            {"inputs": identity["inputs"], "teacher_sha256": identity["teacher_sha256"]},
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
    )
    assert identity["fingerprint"] == old.hexdigest()
    forced = config(f"teacher.checkpoint={teacher_file}", "teacher.format=kdforaa")
    assert identify(forced, str(teacher_file)) == identity  # the same bytes read the same way


def test_fingerprint_names_the_architecture_of_a_foreign_teacher(tmp_path) -> None:
    path = save_repdistiller_checkpoint(foreign_model("resnet8", 10, 1), tmp_path / "resnet8.pth")
    as_resnet8 = identify(config(f"teacher.checkpoint={path}", "teacher.model=resnet8"), str(path))
    assert as_resnet8["teacher_model"] == "resnet8"
    as_resnet14 = identify(config(f"teacher.checkpoint={path}", "teacher.model=resnet14"), str(path))
    assert as_resnet14["fingerprint"] != as_resnet8["fingerprint"]
    assert "teacher model 'resnet8' != 'resnet14'" in cache_module._difference(as_resnet8, as_resnet14)


def test_a_timm_teacher_is_cached_from_its_weights_file_only(tmp_path) -> None:
    timm_keys = ("teacher.checkpoint=timm:tiny", "teacher.pretrained=true")
    with pytest.raises(BadInput, match="which a soft-label cache cannot pin: set teacher.weights=FILE"):
        identify(config(*timm_keys), "timm:tiny")
    weights = tmp_path / "tiny.safetensors"
    save_file({"fc.weight": torch.ones(2, 2)}, weights)
    identity = identify(config(*timm_keys, f"teacher.weights={weights}"), "timm:tiny")
    assert identity["teacher_model"] == "timm:tiny"
    assert identity["teacher_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()


def test_cache_of_a_repdistiller_teacher_is_that_teacher_on_the_replayed_augmentation(tmp_path) -> None:
    reference = foreign_model("resnet8", num_classes=10, in_channels=1)
    path = save_repdistiller_checkpoint(reference, tmp_path / "resnet8.pth")
    cfg = config("train.epochs=1", f"teacher.checkpoint={path}", "teacher.model=resnet8")
    build_cache(cfg, str(path), tmp_path / "c", epochs=1, k=10, progress=False)
    cache = SoftLabelCache.open(tmp_path / "c", cfg, str(path))
    dataset = load_dataset(cfg.data, "train")
    augment = build_augment(cfg.augment, *dataset.image_size)
    images = augment.apply(dataset.images(SAMPLES), augment.sample(make_keys(cfg.seed, 0, SAMPLES)))
    with torch.no_grad():
        expected = reference(normalize(images, dataset.mean, dataset.std))
    assert_fp16_close(replay(cache, 0, SAMPLES), expected)

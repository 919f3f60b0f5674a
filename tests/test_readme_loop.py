"""README's "Use it in your own loop" example runs as written, next to a RepDistiller-style teacher file."""

import torch

from kdforaa.models.registry import build_model
from readme_blocks import python_block


def test_the_own_loop_example_runs(tmp_path, monkeypatch, capsys):
    torch.manual_seed(0)
    weights = {"model": build_model("resnet20", 10, 3).state_dict(), "epoch": 240}  # as RepDistiller saves
    torch.save(weights, tmp_path / "ckpt_epoch_240.pth")
    monkeypatch.chdir(tmp_path)
    exec(python_block("Use it in your own loop"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("Augment(RandAugment(num_ops=2, magnitude=9.0, magnitude_std=0.5")
    assert printed[1].startswith("torch.float32 tensor([")
    assert printed[2].startswith("0 {'ce': ") and "'distill': " in printed[2]
    assert printed[3].startswith("1 {'ce': ")

import math

from kdforaa.config import TrainConfig
from kdforaa.train.schedule import lr_factor


def test_cosine_with_warmup():
    cfg = TrainConfig(warmup_epochs=1, schedule="cosine")
    assert lr_factor(cfg, 0, 100, 10) == 0.1
    assert lr_factor(cfg, 9, 100, 10) == 1.0
    assert lr_factor(cfg, 10, 100, 10) == 1.0
    assert math.isclose(lr_factor(cfg, 55, 100, 10), 0.5)
    assert lr_factor(cfg, 99, 100, 10) < 0.001


def test_step_schedule():
    cfg = TrainConfig(schedule="step", milestones=[0.5, 0.75], gamma=0.1)
    assert lr_factor(cfg, 0, 100, 10) == 1.0
    assert math.isclose(lr_factor(cfg, 50, 100, 10), 0.1)
    assert math.isclose(lr_factor(cfg, 80, 100, 10), 0.01)


def test_constant():
    assert lr_factor(TrainConfig(schedule="constant"), 42, 100, 10) == 1.0

import pytest

from kdforaa.errors import BadInput
from kdforaa.train.config import config_to_dict, load_config, parse_overrides


def test_defaults_when_no_file():
    cfg = load_config(None)
    assert cfg.data.name == "fashion-mnist"
    assert cfg.distill.weight == 0.5
    assert cfg.augment.policy == "none"


def test_yaml_and_dotted_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  name: resnet8\ntrain:\n  epochs: 3\n")
    cfg = load_config(path, ["train.epochs=7", "distill.method=topk_kd", "distill.k_schedule={0: 1, 10: 3}"])
    assert cfg.model.name == "resnet8"
    assert cfg.train.epochs == 7
    assert cfg.distill.method == "topk_kd"
    assert cfg.distill.k_schedule == {0.0: 1, 10.0: 3}


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epoch: 3\n")
    with pytest.raises(BadInput, match="unknown config key 'train.epoch'"):
        load_config(path)


def test_wrong_type_is_named():
    with pytest.raises(BadInput, match="train.batch_size"):
        load_config(None, ["train.batch_size=lots"])


def test_bad_override_syntax():
    with pytest.raises(BadInput, match="key.sub=value"):
        parse_overrides(["train.epochs"])


def test_not_a_mapping(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(BadInput, match="mapping"):
        load_config(path)


def test_invalid_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train: [1, 2\n")
    with pytest.raises(BadInput, match="not valid YAML"):
        load_config(path)


def test_round_trip_through_dict():
    cfg = load_config(None, ["augment.magnitude=15", "distill.hints={stage2: 1.0}"])
    again = load_config(None)
    assert config_to_dict(cfg) != config_to_dict(again)
    from kdforaa.train.config import build_config

    assert build_config(config_to_dict(cfg)) == cfg

from pathlib import Path

import pytest

from kdforaa.config import RunConfig, config_table, config_to_dict, load_config, parse_overrides
from kdforaa.errors import BadInput


def test_defaults_when_no_file():
    cfg = load_config(None)
    assert cfg.data.name == "fashion-mnist"
    assert cfg.distill.weight == 0.5
    assert cfg.augment.policy == "none"


def test_yaml_and_dotted_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  name: resnet8\ntrain:\n  epochs: 3\n")
    distill = ["distill.method=topk_kd", "distill.k_schedule={0: 1, 10: 3}", "teacher.checkpoint=t.pt"]
    cfg = load_config(path, ["train.epochs=7", *distill])
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
    cfg = load_config(
        None, ["augment.magnitude=15", "distill.hints={stage2: 1.0}", "teacher.checkpoint=t.pt"]
    )
    again = load_config(None)
    assert config_to_dict(cfg) != config_to_dict(again)
    from kdforaa.config import build_config

    assert build_config(config_to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["distill.method=kd"], "^distill.method=kd needs a teacher: set teacher.checkpoint=PATH$"),
        (["distill.sp=10"], "^a feature term needs a teacher: set teacher.checkpoint=PATH$"),
        (["teacher.cache=c"], "^teacher.cache needs teacher.checkpoint"),
        (
            ["teacher.cache=c", "teacher.checkpoint=t.pt", "distill.hints={stage2: 1}"],
            "need the teacher's features, which a cache does not hold: unset teacher.cache$",
        ),
        (["distill.adjust=shift"], "modify the logit distillation term: set distill.method=kd or topk_kd$"),
        (["distill.method=kd", "distill.k_schedule={0: 2}"], "k_schedule applies to distill.method=topk_kd"),
        (["distill.method=topk_kd", "distill.k_schedule={3: 2}"], "needs a threshold at level 0"),
        (["distill.method=topk_kd", "distill.k_schedule={0: 0}"], "values must be k >= 1"),
        (["distill.hints={stage2: -1}"], "^distill.hints.stage2: weight must be >= 0, got -1"),
        (["distill.kr=1", "distill.kr_stages=[]"], "^distill.kr_stages is empty"),
    ],
)
def test_keys_that_cannot_work_together_fail_at_load_time_with_one_line(overrides, message):
    with pytest.raises(BadInput, match=message) as caught:
        load_config(None, [*overrides, *(["teacher.checkpoint=t.pt"] if "teacher" not in message else [])])
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["teacher.checkpoint=timm:resnet18"],
            "^teacher.checkpoint=timm:resnet18 would be an untrained, randomly initialised teacher: set "
            "teacher.pretrained=true to load timm's pretrained weights",
        ),
        (
            ["teacher.checkpoint=timm:resnet18", "teacher.weights=w.safetensors"],
            "would be an untrained, randomly initialised teacher",
        ),
        (
            ["teacher.checkpoint=timm:resnet18", "teacher.pretrained=true", "teacher.model=resnet8"],
            "^teacher.model: timm:resnet18 names its own architecture: remove teacher.model$",
        ),
        (
            ["teacher.checkpoint=timm:resnet18", "teacher.pretrained=true", "teacher.format=state_dict"],
            r"^teacher.format describes a weights file, and this timm teacher has none \(teacher.weights\)",
        ),
        (
            ["teacher.checkpoint=t.pt", "teacher.pretrained=true"],
            "^teacher.pretrained applies to timm:<name> teachers; t.pt holds its own weights: "
            "remove teacher.pretrained$",
        ),
        (
            ["teacher.checkpoint=t.pt", "teacher.weights=w.pt"],
            "^teacher.weights applies to timm:<name> teachers",
        ),
        (
            ["teacher.checkpoint=t.pth", "teacher.format=repdistiller"],
            "^teacher.format=repdistiller: such a checkpoint does not record its architecture: "
            r"set teacher.model=NAME \(e.g. resnet32x4; see kdforaa models\)$",
        ),
        (
            ["teacher.checkpoint=t.pt", "teacher.format=state_dict"],
            "^teacher.format=state_dict: such a checkpoint",
        ),
        (
            ["teacher.model=resnet8"],
            r"^teacher.model describes the teacher: set teacher.checkpoint=PATH \(or timm",
        ),
        (["teacher.pretrained=true"], "^teacher.pretrained describes the teacher: set teacher.checkpoint"),
        (
            ["teacher.format=bogus"],
            "^config key 'teacher.format': Input should be 'auto', 'kdforaa', 'repdistiller'",
        ),
    ],
)
def test_teacher_keys_that_cannot_work_together_fail_at_load_time_with_one_line(overrides, message):
    with pytest.raises(BadInput, match=message) as caught:
        load_config(None, overrides)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "overrides",
    [
        ["teacher.checkpoint=t.pth", "teacher.model=resnet32x4"],
        ["teacher.checkpoint=t.pth", "teacher.model=resnet32x4", "teacher.format=repdistiller"],
        ["teacher.checkpoint=w.safetensors", "teacher.format=safetensors"],
        ["teacher.checkpoint=best.pt", "teacher.format=kdforaa", "teacher.model=resnet8"],
        ["teacher.checkpoint=timm:resnet18", "teacher.pretrained=true"],
        ["teacher.checkpoint=timm:resnet18", "teacher.pretrained=true", "teacher.weights=w.pth"],
        [
            "teacher.checkpoint=timm:resnet18",
            "teacher.pretrained=true",
            "teacher.weights=w",
            "teacher.format=state_dict",
        ],
    ],
)
def test_teacher_keys_that_work_together(overrides):
    teacher = load_config(None, overrides).teacher
    assert teacher.checkpoint == overrides[0].partition("=")[2]


def test_teacher_config_checks_a_section_outside_a_run_config():
    from kdforaa.config import TeacherConfig, teacher_config

    assert teacher_config("t.pt") == TeacherConfig(checkpoint="t.pt")
    assert teacher_config(TeacherConfig(checkpoint="t.pt"), model="resnet8").model == "resnet8"
    with pytest.raises(BadInput, match="^teacher.checkpoint=timm:x would be an untrained"):
        teacher_config("timm:x")
    with pytest.raises(BadInput, match="^config key 'teacher.format': Input should be"):
        teacher_config("t.pt", format="pickle")


def test_every_config_key_has_a_description():
    """`kdforaa config --schema` and the README's table explain every key: a new field needs one."""
    from kdforaa.config import _field_rows

    missing = [key for key, _, description in _field_rows(RunConfig) if not description]
    assert not missing, f"Field(description=...) missing for {missing}"


def test_the_readme_table_of_config_keys_is_the_schemas():
    """README.md's key table is written from the config fields: after changing a field, run
    ``.venv/bin/python scripts/readme_config_table.py``."""
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "scripts" / "readme_config_table.py"
    spec = importlib.util.spec_from_file_location("readme_config_table", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.README.read_text()
    assert module.with_table(text, config_table()) == text, (
        "README.md's config key table is stale: run .venv/bin/python scripts/readme_config_table.py"
    )

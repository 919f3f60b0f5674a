"""RepDistiller's cross-architecture models: VGG8/11/13, MobileNetV2 (half width), ShuffleNet V1 and V2,
and its bottleneck ResNet50.

Their parameter counts are RepDistiller's, their state dicts have its names and shapes (so its checkpoints
load and export unrenamed), and their stage features feed every feature term.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from foreign_models import SAME_NAMES, repdistiller_shapes, repdistiller_state
from kdforaa.cli import main
from kdforaa.config import DistillConfig, load_config
from kdforaa.distill.criterion import build_criterion
from kdforaa.errors import BadInput
from kdforaa.models.export import export_weights
from kdforaa.models.from_checkpoint import load_trained
from kdforaa.models.registry import available_models, build_model, describe_model
from kdforaa.models.shufflenet import channel_shuffle
from kdforaa.models.vgg import VGG

pytestmark = pytest.mark.timeout(120)

# RepDistiller's parameter counts at 100 classes and 3x32x32 inputs, derived by hand from its model files
# (HobbitLong/RepDistiller, models/vgg.py, mobilenetv2.py, ShuffleNetv1.py, ShuffleNetv2.py): a k x k
# convolution has k*k*in*out/groups weights (+ out biases in VGG), a BatchNorm 2*C, the classifier
# D*100 + 100.
REPDISTILLER_CIFAR100_PARAMS = {
    # vgg8_bn, cfg S (one conv per block): convs 3-64, 64-128, 128-256, 256-512, 512-512 with bias and BN
    # = 1_920 + 74_112 + 295_680 + 1_181_184 + 2_360_832; classifier 512*100 + 100 = 51_300
    "vgg8": 3_965_028,
    # vgg11_bn, cfg A: 3-64, 64-128, 128-256, 256-256, 256-512, 3 x 512-512
    # = 1_920 + 74_112 + 295_680 + 590_592 + 1_181_184 + 3 * 2_360_832; + 51_300
    "vgg11": 9_277_284,
    # vgg13_bn, cfg B: 3-64, 64-64, 64-128, 128-128, 128-256, 256-256, 256-512, 3 x 512-512
    # = 1_920 + 37_056 + 74_112 + 147_840 + 295_680 + 590_592 + 1_181_184 + 3 * 2_360_832; + 51_300
    "vgg13": 9_462_180,
    # mobile_half (T=6, width 0.5): stem 3x3 3-16 + BN = 464; an inverted residual in->out with hidden
    # h = in*t has h*(in + out + 13) + 2*out parameters; stages (t, out, n) = (1,8,1) (6,12,2) (6,16,3)
    # (6,32,4) (6,48,3) (6,80,3) (6,160,1) give 608 + 4_296 + 11_688 + 50_464 + 80_928 + 207_168
    # + 121_760 = 476_912; conv2 1x1 160-1280 + BN = 207_360; classifier 1280*100 + 100 = 128_100
    "mobilenetv2": 812_836,
    # ShuffleV1 (groups 3): stem 1x1 3-24 + BN = 120; a bottleneck in->out (mid = out/4, first conv
    # grouped by g1) has in*mid/g1 + mid*out/3 + 9*mid + 4*mid + 2*out; layer1 = 6_318 + 3 * 10_860,
    # layer2 = 10_860 + 7 * 40_920, layer3 = 40_920 + 3 * 158_640; linear 960*100 + 100 = 96_100
    "shufflenetv1": 949_258,
    # ShuffleV2 (net_size 1): stem 120; a DownBlock in->out (mid = out/2) has 11*in + 2*in*mid + mid^2
    # + 17*mid, a BasicBlock of c channels (h = c/2) 2*h^2 + 15*h; layer1 = 7_398 + 3 * 7_598, layer2 =
    # 43_616 + 7 * 28_652, layer3 = 167_968 + 3 * 111_128; conv2 464-1024 + BN = 477_184; linear 102_500
    "shufflenetv2": 1_355_528,
    # ResNet50 (resnetv2.py, Bottleneck x [3, 4, 6, 3]): stem 3x3 3-64 + BN = 1_856; a bottleneck in->4p
    # has in*p + 13*p^2 + 12*p, plus 4*p*in + 8*p for a projection shortcut; layer1 (p=64) = 75_008 +
    # 2 * 70_400, layer2 (128) = 379_392 + 3 * 280_064, layer3 (256) = 1_512_448 + 5 * 1_117_184,
    # layer4 (512) = 6_039_552 + 2 * 4_462_592; linear 2048*100 + 100 = 204_900
    "resnet50": 23_705_252,
}

# stage -> channels, and the map sides at 32x32 and 28x28 inputs (VGG pools with floor, strided convs ceil)
STAGES = {
    "vgg": ((64, 128, 256, 512), (32, 16, 8, 4), (28, 14, 7, 3)),
    "mobilenetv2": ((16, 12, 16, 1280), (16, 16, 8, 2), (14, 14, 7, 2)),
    "shufflenetv1": ((24, 240, 480, 960), (32, 16, 8, 4), (28, 14, 7, 4)),
    "shufflenetv2": ((24, 116, 232, 1024), (32, 16, 8, 4), (28, 14, 7, 4)),
    "resnet50": ((64, 256, 512, 2048), (32, 32, 16, 4), (28, 28, 14, 4)),
}
STAGE_NAMES = ("stem", "stage1", "stage2", "stage3")
# one model of each family (vgg11 and vgg13 run vgg8's code with more convolutions)
FAMILIES = ("vgg8", "mobilenetv2", "shufflenetv1", "shufflenetv2", "resnet50")


def stages_of(name: str) -> tuple[tuple[int, ...], ...]:
    return STAGES["vgg" if name.startswith("vgg") else name]


def num_params(name: str, num_classes: int, in_channels: int) -> int:
    with torch.device("meta"):
        model = build_model(name, num_classes, in_channels)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("name", "count"), REPDISTILLER_CIFAR100_PARAMS.items())
def test_parameter_counts_match_repdistillers(name: str, count: int) -> None:
    assert num_params(name, 100, 3) == pytest.approx(count, rel=0.01)


@pytest.mark.parametrize("name", SAME_NAMES)
@pytest.mark.parametrize(("num_classes", "in_channels"), [(100, 3), (10, 1)])
def test_state_dict_has_repdistillers_names_and_shapes(name: str, num_classes: int, in_channels: int) -> None:
    with torch.device("meta"):
        model = build_model(name, num_classes, in_channels)
    ours = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert ours == repdistiller_shapes(name, num_classes, in_channels)


@pytest.mark.parametrize("name", FAMILIES)
def test_features_have_the_documented_shapes_and_pooled_is_their_mean(name: str) -> None:
    channels, *sides = stages_of(name)
    torch.manual_seed(0)
    for in_channels, side, stage_sides in ((3, 32, sides[0]), (1, 28, sides[1])):
        model = build_model(name, 10, in_channels).eval()
        expected_channels = dict(zip(STAGE_NAMES, channels, strict=True)) | {"pooled": channels[-1]}
        assert model.stage_channels == expected_channels
        x = torch.randn(2, in_channels, side, side)
        with torch.no_grad():
            logits, feats = model(x, return_features=True)
            torch.testing.assert_close(model(x), logits)
        assert logits.shape == (2, 10) and list(feats) == [*STAGE_NAMES, "pooled"]
        for stage, width, size in zip(STAGE_NAMES, channels, stage_sides, strict=True):
            assert feats[stage].shape == (2, width, size, size), (stage, side)
            linear_bottleneck = name == "mobilenetv2" and stage in ("stage1", "stage2")
            assert (feats[stage].min() >= 0) != linear_bottleneck, f"{stage} activation"
        torch.testing.assert_close(feats["pooled"], feats["stage3"].mean(dim=(2, 3)))


@pytest.mark.parametrize(
    ("student", "teacher"), [*((name, "resnet8") for name in FAMILIES), ("resnet8", "vgg8")]
)
def test_every_feature_term_accepts_the_models(student: str, teacher: str) -> None:
    """Hints on all four stages, SP and KR between a new model and a ResNet, either way round, in train
    mode: the loss reaches every parameter of the student through its features (in-place ReLUs,
    concatenations and channel shuffles keep autograd intact). 16x16 inputs keep it cheap."""
    cfg = DistillConfig(
        method="kd", sp=1.0, hints=dict.fromkeys(STAGE_NAMES, 1.0), kr=1.0, kr_sparse=0.1, kr_groups=4
    )
    torch.manual_seed(0)
    s_model, t_model = build_model(student, 10, 1).train(), build_model(teacher, 10, 1).eval()
    criterion = build_criterion(
        cfg, 10, student_channels=s_model.stage_channels, teacher_channels=t_model.stage_channels
    )
    x, labels = torch.randn(2, 1, 16, 16), torch.tensor([3, 7])
    s_logits, s_feats = s_model(x, return_features=True)
    with torch.no_grad():
        t_logits, t_feats = t_model(x, return_features=True)
    loss, values = criterion(s_logits, labels, t_logits, None, s_feats, t_feats)
    loss.backward()
    expected = {"ce", "distill", "sp", "kr", "kr_sparse", *(f"hint:{stage}" for stage in STAGE_NAMES)}
    assert set(values) == expected and all(torch.isfinite(v) for v in values.values())
    for param_name, param in s_model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), param_name


@pytest.mark.parametrize("name", SAME_NAMES)
def test_a_repdistiller_checkpoint_loads_unrenamed_and_exports_back(tmp_path: Path, name: str) -> None:
    """A checkpoint as RepDistiller's train_teacher.py saves it, written from the names and shapes its model
    files give (not from our modules), loads with every tensor in place; its export reads back the same."""
    state = repdistiller_state(name)
    path = tmp_path / "ckpt_epoch_240.pth"
    torch.save({"epoch": 240, "model": state, "accuracy": 70.0}, path)
    trained = load_trained(str(path), architecture=name)
    assert (trained.name, trained.format) == (name, "repdistiller")
    assert (trained.num_classes, trained.in_channels) == (100, 3)
    loaded = trained.model.state_dict()
    assert list(loaded) == list(state)  # the same names, in the same order
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key
    out = export_weights(trained, tmp_path / f"{name}.safetensors")
    again = load_trained(str(out))  # the file records the architecture
    assert again.name == name
    plain = build_model(name, 100, 3)
    plain.load_state_dict(load_file(out))  # RepDistiller's names: its own model class would take it as well
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = trained.model.eval()(x)
        assert torch.isfinite(logits).all()
        assert torch.equal(again.model.eval()(x), logits) and torch.equal(plain.eval()(x), logits)


def test_class_count_and_channels_are_read_off_repdistiller_weights(tmp_path: Path) -> None:
    for name in ("vgg8", "mobilenetv2", "shufflenetv2"):  # classifier, classifier.0, linear
        torch.save({"model": repdistiller_state(name, num_classes=7, in_channels=1)}, tmp_path / "c.pth")
        trained = load_trained(str(tmp_path / "c.pth"), architecture=name)
        assert (trained.num_classes, trained.in_channels) == (7, 1), name


def test_weights_of_another_family_name_the_first_key_that_does_not_fit(tmp_path: Path) -> None:
    torch.save({"model": repdistiller_state("vgg8")}, tmp_path / "c.pth")
    with pytest.raises(BadInput) as err:
        load_trained(str(tmp_path / "c.pth"), architecture="vgg13")
    # vgg13 has a second conv + BN in each of the 5 blocks: 5 * (2 + 5) = 35 keys that vgg8 lacks
    assert str(err.value).endswith("do not fit model 'vgg13': block0.3.weight is missing (and 34 more)")


def test_channel_shuffle_interleaves_the_groups() -> None:
    x = torch.arange(6.0).reshape(1, 6, 1, 1)  # groups of 3: [0 1] [2 3] [4 5]
    assert channel_shuffle(x, 3).flatten().tolist() == [0, 2, 4, 1, 3, 5]


def test_an_unknown_vgg_depth_is_refused() -> None:
    with pytest.raises(BadInput, match="VGG depth must be one of 8, 11, 13, got 16"):
        VGG(16, 10, 3)


def test_kdforaa_models_lists_them_with_parameter_counts(capsys: pytest.CaptureFixture) -> None:
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in SAME_NAMES:
        assert describe_model(name) in lines
    assert describe_model("shufflenetv1") == (
        "shufflenetv1: ShuffleNet V1, groups 3, widths 240/480/960, 0.86M parameters (10 classes, 1 channel)"
    )


CIFAR100_CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "cifar100"
# RepDistiller's CIFAR-100 pairs with these students (README, "cross-architecture" table, and vgg13 -> vgg8);
PAIRS = [
    ("mobilenetv2", "vgg13"),
    ("mobilenetv2", "resnet50"),
    ("vgg8", "resnet50"),
    ("shufflenetv1", "resnet32x4"),
    ("shufflenetv2", "resnet32x4"),
    ("shufflenetv1", "wrn_40_2"),
    ("vgg8", "vgg13"),
]


@pytest.mark.parametrize(("student", "teacher"), PAIRS)
def test_the_cifar100_configs_of_repdistillers_pairs_validate(student: str, teacher: str) -> None:
    config = load_config(CIFAR100_CONFIGS / f"{student}_from_{teacher}.yaml")
    assert (config.data.name, config.model.name, config.teacher.model) == ("cifar100", student, teacher)
    assert config.train.lr == (0.05 if student.startswith("vgg") else 0.01)  # RepDistiller's student lr
    assert config.teacher.checkpoint == f"runs/c100-{teacher}/best.pt"
    assert load_config(CIFAR100_CONFIGS / f"teacher_{teacher}.yaml").model.name == teacher
    assert {student, teacher} <= set(available_models())


def test_a_student_distils_from_a_repdistiller_teacher_through_its_features(tmp_path: Path) -> None:
    """End to end on Fashion-MNIST (1x28x28): a vgg8 teacher from a RepDistiller checkpoint (random
    weights), a mobilenetv2 student with KD, SP and a hint, one tiny epoch; then its export reads back."""
    teacher = tmp_path / "ckpt_epoch_240.pth"
    torch.save({"model": repdistiller_state("vgg8", num_classes=10, in_channels=1)}, teacher)
    args = ["data.limit=64", "data.test_limit=32", "train.epochs=1", "train.batch_size=32"]
    args += ["model.name=mobilenetv2", f"teacher.checkpoint={teacher}", "teacher.model=vgg8"]
    args += ["distill.method=kd", "distill.sp=1.0", "distill.hints={stage2: 1.0}"]
    assert main(["train", *args, "--out", str(tmp_path / "run"), "--quiet"]) == 0
    (epoch,) = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(epoch[f"train_{term}"]) for term in ("ce", "distill", "sp", "hint:stage2"))
    out = tmp_path / "student.safetensors"
    assert main(["export", str(tmp_path / "run" / "best.pt"), "--out", str(out)]) == 0
    assert load_trained(str(out)).name == "mobilenetv2"

"""Outlier accounting on cases with known answers, the Wang et al. statistic by hand, and the command."""

from __future__ import annotations

import csv
import math
import re

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from kdforaa.analysis.outliers import (
    Outlier,
    analyse_outliers,
    find_outliers,
    outlier_rate_table,
    outlier_stats,
    parse_levels,
    resolve_op_set,
    strongest_outliers,
    teacher_stddev,
)
from kdforaa.analysis.teacher_memo import TeacherMemo
from kdforaa.augment.policies import AUTOAUGMENT_POLICIES, RANDAUGMENT_OPS
from kdforaa.checkpoint import save_checkpoint
from kdforaa.cli import main
from kdforaa.config import DataConfig, build_config, config_to_dict
from kdforaa.data.datasets import InMemoryDataset, load_dataset
from kdforaa.data.loader import normalize
from kdforaa.distill.teacher import Teacher
from kdforaa.errors import BadInput
from kdforaa.models.registry import build_model

CLASSES = 10


class GreyLevelTeacher(nn.Module):
    """Knows that class c is a uniform image of grey 10c + 5: right on those, wrong on their negatives.

    Reads the grey level back from ``x = pixel / 255`` (the data set below has mean 0, std 1); a bright
    image (an inverted one) is read as 255 - grey and answered with the next class.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grey = x.mean(dim=(1, 2, 3)) * 255
        dark = grey <= 127
        level = torch.where(dark, grey, 255 - grey)
        predicted = (level / 10).floor().long().clamp(0, CLASSES - 1)
        predicted = torch.where(dark, predicted, (predicted + 1) % CLASSES)
        return 8.0 * nn.functional.one_hot(predicted, CLASSES).float()


def grey_dataset(per_class: int = 4) -> InMemoryDataset:
    labels = torch.arange(CLASSES).repeat(per_class)
    data = (10 * labels + 5).to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 8, 8).contiguous()
    return InMemoryDataset(data, labels, tuple(f"c{i}" for i in range(CLASSES)), (0.0,), (1.0,))


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_invert_makes_every_image_an_outlier_identity_none(tmp_path):
    teacher = Teacher(GreyLevelTeacher(), "grey", CLASSES, 1)
    op_set = resolve_op_set("identity,invert")
    result = analyse_outliers(
        teacher, grey_dataset(), tmp_path, op_set=op_set, levels=(0, 10), group_size=10, progress=False
    )
    by_op = {r["op"]: r for r in result.rows}
    assert [r["level"] for r in result.rows] == [None, None]  # no argument: measured once, no level
    assert by_op["invert"]["outlier_rate"] == 1.0
    assert by_op["invert"]["teacher_acc"] == 0.0
    assert by_op["invert"]["mean_true_prob"] < 0.01
    assert by_op["identity"]["outlier_rate"] == 0.0
    assert by_op["identity"]["teacher_acc"] == 100.0
    assert by_op["identity"]["topk_coverage"] == 1.0
    assert result.clean_acc == 100.0
    assert {o.op for o in result.outliers} == {"invert"}
    # the gallery regenerates exactly the image that was measured: an inverted grey 10c + 5
    for o in result.outliers:
        assert o.top[0][0] == (o.label + 1) % CLASSES
    header = next(csv.reader(open(tmp_path / "outliers.csv")))
    assert header[:5] == ["op", "level", "k", "n", "teacher_acc"]
    assert {"outlier_rate", "mean_true_prob", "topk_coverage", "t_stddev"} <= set(header)
    assert [(r["op"], r["level"]) for r in read_csv(tmp_path / "outliers.csv")] == [
        ("identity", ""),
        ("invert", ""),
    ]
    policy = read_csv(tmp_path / "policy_stats.csv")
    assert [p["policy"] for p in policy][0] == "none" and len(policy) == 3
    for name in ("outliers_heatmap.png", "outliers_gallery.png"):
        assert Image.open(tmp_path / name).size[0] > 100


@pytest.fixture(scope="module")
def fashion():
    return load_dataset(DataConfig(test_limit=48), "test")


def test_level_zero_geometric_ops_change_nothing(tmp_path, fashion):
    torch.manual_seed(0)
    teacher = Teacher(build_model("resnet8", 10, 1), "resnet8", 10, 1)
    op_set = resolve_op_set("rotate,shear_x,shear_y,translate_x,translate_y")
    result = analyse_outliers(
        teacher, fashion, tmp_path, op_set=op_set, levels=(0,), group_size=16, progress=False
    )
    for row in result.rows:
        assert row["outlier_rate"] == 0.0
        assert row["teacher_acc"] == pytest.approx(result.clean_acc)
        assert row["t_stddev"] == pytest.approx(result.policy_rows[0]["t_stddev"])
    assert result.outliers == []
    assert (tmp_path / "outliers_gallery.png").exists()


def test_teacher_stddev_by_hand():
    probs = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.3, 0.7]])
    # groups of 2 (the fifth row is dropped): means (1, 0) and (0.25, 0.75); per class the unbiased std
    # over the two groups is |1 - 0.25| / sqrt(2), the same for both classes
    assert teacher_stddev(probs, group_size=2) == pytest.approx(0.75 / math.sqrt(2))
    # order first: groups (rows 2, 0) and (3, 1) -> means (0.5, 0.5), (0.75, 0.25)
    assert teacher_stddev(probs, 2, order=torch.tensor([2, 0, 3, 1, 4])) == pytest.approx(0.25 / math.sqrt(2))
    assert math.isnan(teacher_stddev(probs, group_size=3))  # one full group only
    assert teacher_stddev(torch.full((6, 3), 1 / 3), group_size=2) == 0.0


def test_outlier_stats_by_hand():
    clean = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]])
    augmented = torch.tensor([[0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.5, 0.4, 0.1]])
    labels = torch.tensor([0, 1, 1, 2])
    stats = outlier_stats(clean, augmented, labels, k=2, group_size=2)
    assert stats["n"] == 4
    assert stats["teacher_acc"] == 25.0  # only sample 1
    assert stats["outlier_rate"] == 0.5  # samples 0 and 3: right clean, wrong augmented (2 was wrong clean)
    assert stats["mean_true_prob"] == pytest.approx((0.2 + 0.8 + 0.2 + 0.1) / 4)
    assert stats["topk_coverage"] == 0.75  # sample 3's true class is third
    found = find_outliers(clean, augmented, labels, "rotate", 10.0, count=1)
    assert [(o.index, round(o.drop, 6)) for o in found] == [(0, 0.7)]
    assert found[0].top[0][0] == 1


def test_gallery_choice_spreads_over_ops():
    def outlier(op, index, drop):
        return Outlier(drop, op, 10.0, index, 0, 0.0, ((1, 1.0),))

    candidates = [outlier("invert", i, 0.99) for i in range(10)] + [
        outlier("rotate", i, 0.5) for i in range(10)
    ]
    candidates += [outlier("invert", 0, 0.98)]  # same image and op again: shown once
    chosen = strongest_outliers(candidates, 8)
    assert [o.op for o in chosen] == ["invert"] * 2 + ["rotate"] * 2  # at most a quarter per op
    assert len({o.index for o in chosen}) == len(chosen)  # every test image once: rotate shows 2 and 3
    assert [o.index for o in chosen] == [0, 1, 2, 3]


def test_gallery_shows_blank_results_only_when_nothing_else_is_left():
    blank = [Outlier(0.99, "translate_x", 30.0, i, 0, 0.0, ((1, 1.0),), flat=True) for i in range(4)]
    shown = [Outlier(0.4, "rotate", 30.0, i, 0, 0.0, ((1, 1.0),)) for i in range(10, 12)]
    chosen = strongest_outliers(blank + shown, 8)  # at most 2 per op
    assert [(o.op, o.flat) for o in chosen] == [("rotate", False)] * 2 + [("translate_x", True)] * 2


def test_teacher_memo_gives_the_bits_of_one_pass_and_runs_each_image_once(fashion):
    torch.manual_seed(0)
    teacher = Teacher(build_model("resnet8", 10, 1), "resnet8", 10, 1)
    images = fashion.images(torch.arange(12))
    memo = TeacherMemo(teacher, fashion.mean, fashion.std, "cpu")
    direct = teacher(normalize(images, fashion.mean, fashion.std)).softmax(1)
    assert torch.equal(memo(images[:5]), direct[:5])
    again = torch.cat([images[3:4], images[5:12], images[5:6], images[0:1]])  # seen, new, repeated
    assert torch.equal(memo(again), torch.cat([direct[3:4], direct[5:12], direct[5:6], direct[0:1]]))
    assert torch.equal(memo(images[11:12]), direct[11:12])  # seen: no lone forward
    assert (memo.requested, memo.computed) == (5 + 10 + 1, 12)
    lone = TeacherMemo(teacher, fashion.mean, fashion.std, "cpu")
    assert torch.equal(lone(images[7:8]), direct[7:8])  # a lone new image is run padded to two
    chunked = TeacherMemo(teacher, fashion.mean, fashion.std, "cpu", batch_size=5)
    assert torch.equal(chunked(images), direct)  # new images run in batches of 5, 5 and 2


def test_heatmap_table_has_the_level_free_column_and_the_whole_policy_row():
    def row(op, level, rate):
        return {"op": op, "level": level, "outlier_rate": rate}

    rows = [row("rotate", 0.0, 0.0), row("rotate", 10.0, 0.25), row("invert", None, 0.5)]
    policy = [{"policy": "none", "outlier_rate": 0.0}, {"outlier_rate": 0.1}, {"outlier_rate": 0.3}]
    values, row_labels, column_labels = outlier_rate_table(rows, policy, [0.0, 10.0])
    assert row_labels == ["rotate", "invert", "whole policy"]
    assert column_labels == ["0", "10", "any"]
    expected = [[0.0, 25.0, math.nan], [math.nan, math.nan, 50.0], [10.0, 30.0, math.nan]]
    assert np.allclose(values, expected, equal_nan=True)


def test_op_sets_and_levels():
    assert resolve_op_set("randaugment").ops == RANDAUGMENT_OPS
    auto = resolve_op_set("autoaugment", autoaugment_policy="svhn")
    assert set(auto.ops) == {op for sub in AUTOAUGMENT_POLICIES["svhn"] for op, _, _ in sub}
    assert resolve_op_set("rotate, invert,rotate").ops == ("rotate", "invert")
    assert resolve_op_set("trivialaugment").policy(12).max_level == 12
    for bad in ("randaugmnt", "rotate,spin", ","):
        with pytest.raises(BadInput, match="neither a policy"):
            resolve_op_set(bad)
    assert parse_levels("0, 5,10") == [0.0, 5.0, 10.0]
    for bad in ("", "5,x", "-1", "nan"):
        with pytest.raises(BadInput, match="--levels"):
            parse_levels(bad)


def _checkpoint(path, num_classes=10):
    torch.manual_seed(0)
    model = build_model("resnet8", num_classes, 1)
    cfg = config_to_dict(build_config({"model": {"name": "resnet8"}}))
    state = {"model": model.state_dict(), "config": cfg, "num_classes": num_classes, "in_channels": 1}
    save_checkpoint(state, path)
    return path


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_command_end_to_end(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "best.pt")
    out = tmp_path / "out"
    argv = ["outliers", "--teacher", str(ckpt), "--out", str(out), "--limit", "40", "--levels", "0,10"]
    code = main([*argv, "--policy", "rotate,invert", "--group-size", "10", "--device", "cpu"])
    stdout, stderr = capsys.readouterr()
    assert code == 0
    # captured output is no terminal: a line per op, then one for the policy, no carriage-return bar
    lines = stderr.splitlines()
    assert "\r" not in stderr and [line.split(";")[0] for line in lines] == [
        "outliers: op 1/2 (rotate) done",
        "outliers: op 2/2 (invert) done",
        "outliers: the whole policy done",
    ]
    assert all(re.search(r"; \d+:\d\d elapsed, about \d+:\d\d left$", line) for line in lines)
    assert stdout.strip().splitlines()[-1].startswith(f"outlier analysis written to {out.resolve()}")
    # rotate at level 0 is the identity and invert has no level: the teacher saw 40 clean, 40 rotated
    # by 10, 40 inverted images, and those of the policy that are new
    assert "the teacher ran on " in stdout
    assert [(r["op"], r["level"]) for r in read_csv(out / "outliers.csv")] == [
        ("rotate", "0.0"),
        ("rotate", "10.0"),
        ("invert", ""),
    ]
    policy = read_csv(out / "policy_stats.csv")
    assert [p["level"] for p in policy] == ["0.0", "0.0", "10.0"]
    assert all(p["t_stddev"] for p in policy)  # 40 images in groups of 10


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--policy", "randaugmnt"], "neither a policy"),
        (["--policy", "rotate,spin"], "'spin'"),
        (["--levels", "5,ten"], "--levels"),
    ],
)
def test_command_bad_input(tmp_path, capsys, extra, needle):
    ckpt = _checkpoint(tmp_path / "best.pt")
    code = main(["outliers", "--teacher", str(ckpt), "--out", str(tmp_path / "o"), "--limit", "8", *extra])
    assert code == 2
    assert needle in one_line(capsys.readouterr().err)


def test_command_teacher_for_another_data_set(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "five.pt", num_classes=5)
    code = main(["outliers", "--teacher", str(ckpt), "--out", str(tmp_path / "o"), "--limit", "8"])
    assert code == 2
    assert "5 classes" in one_line(capsys.readouterr().err)


def test_the_default_data_set_of_a_teacher_file_that_records_none_is_fashion_mnist(tmp_path):
    """A run checkpoint names its data set; an exported .safetensors file does not (pass --data)."""
    from safetensors.torch import save_file

    from kdforaa.analysis.outliers import default_data

    run = tmp_path / "best.pt"
    config = config_to_dict(build_config({"data": {"name": "mnist", "root": "/data"}}))
    save_checkpoint({"model": build_model("resnet8", 10, 1).state_dict(), "config": config}, run)
    assert default_data(str(run)) == ("mnist", "/data")
    exported = tmp_path / "teacher.safetensors"
    save_file(build_model("resnet8", 10, 1).state_dict(), str(exported))
    assert default_data(str(exported)) == ("fashion-mnist", None)
    save_file(build_model("resnet8", 10, 1).state_dict(), str(exported), metadata={"kdforaa.data": "mnist"})
    assert default_data(str(exported)) == ("mnist", None)  # an export records the data set's name


def test_run_outliers_prints_nothing_and_returns_what_it_measured_and_wrote(tmp_path, capsys):
    """The library side of the command: options in, results out; the printing is cli.py's."""
    from kdforaa.analysis.outliers import OutlierOptions, OutlierResults, run_outliers

    ckpt = _checkpoint(tmp_path / "best.pt")
    options = OutlierOptions(
        teacher=str(ckpt),
        out=tmp_path / "out",
        limit=16,
        device="cpu",
        policy="invert",
        levels=(0.0,),
        group_size=8,
        gallery=2,
        progress=False,
    )
    results = run_outliers(options)
    assert capsys.readouterr() == ("", "")
    assert isinstance(results, OutlierResults)
    assert (results.data, results.images, results.t_stddev_measured) == ("fashion-mnist", 16, True)
    assert [(r["op"], r["level"], r["n"]) for r in results.rows] == [("invert", None, 16)]
    assert set(results.files) == {"csv", "policy_csv", "heatmap", "gallery"}
    assert all(path.is_file() and path.parent == tmp_path / "out" for path in results.files.values())
    assert 0 <= results.clean_acc <= 100 and len(results.outliers) <= 2


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("k", 0, "k must be at least 1, got 0"),
        ("group_size", 0, "group_size must be at least 1"),
        ("gallery", -1, "gallery must be 0 or more"),
        ("levels", (5.0, -1.0), "levels must be non-negative numbers"),
    ],
)
def test_outlier_options_name_their_fields_not_flags(field, value, message):
    from kdforaa.analysis.outliers import OutlierOptions

    with pytest.raises(BadInput, match=re.escape(message)) as caught:
        OutlierOptions(teacher="t.pt", out="o", **{field: value})
    assert "--" not in str(caught.value)


def test_command_names_the_flag(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "best.pt")
    code = main(["outliers", "--teacher", str(ckpt), "--out", str(tmp_path / "o"), "--group-size", "0"])
    assert code == 2
    assert one_line(capsys.readouterr().err) == "kdforaa: error: --group-size must be at least 1, got 0"

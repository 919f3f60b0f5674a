"""metrics.jsonl counts epochs from 1, as the console does; files that counted from 0 still read right."""

import json

from kdforaa.train.run_folder import RunFolder


def write(folder: RunFolder, epochs: list[int]) -> None:
    folder.path.mkdir(parents=True, exist_ok=True)
    folder.file("metrics.jsonl").write_text(
        "".join(json.dumps({"epoch": e, "step": 4 * e}) + "\n" for e in epochs)
    )


def test_a_file_that_counted_from_0_is_read_from_1(tmp_path):
    folder = RunFolder(tmp_path / "old")
    write(folder, [0, 1, 2])
    assert [r["epoch"] for r in folder.read_metrics()] == [1, 2, 3]
    assert [r["step"] for r in folder.read_metrics()] == [0, 4, 8]  # only the epoch moves


def test_resuming_keeps_the_completed_epochs_of_either_kind_of_file(tmp_path):
    for name, epochs in (("old", [0, 1, 2]), ("new", [1, 2, 3])):
        folder = RunFolder(tmp_path / name)
        write(folder, epochs)
        folder.keep_metrics_before(2)  # the checkpoint completed 2 epochs
        assert [r["epoch"] for r in folder.read_metrics()] == [1, 2]
        folder.append_metrics({"epoch": 3, "step": 12})
        assert [r["epoch"] for r in folder.read_metrics()] == [1, 2, 3]

"""`kdforaa demo` end to end with tiny teacher and student settings (the real ones take minutes)."""

import json

from kdforaa.experiments import demo

TINY = {"data": {"limit": 256, "test_limit": 100}, "model": {"name": "resnet8"}, "train": {"epochs": 1}}


def test_demo_writes_table_plot_and_json_and_reuses_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "_TEACHER", TINY)
    monkeypatch.setattr(demo, "_STUDENT", demo.merge_trees(TINY, {"augment": {"policy": "randaugment"}}))
    results = demo.run_demo(tmp_path, seeds=2)
    assert [r["method"] for r in results["rows"]] == list(demo.METHODS)
    assert all(r["n"] == 2 and len(r["accs"]) == 2 for r in results["rows"])
    assert json.loads((tmp_path / "results.json").read_text())["rows"] == results["rows"]
    assert (tmp_path / "demo.png").read_bytes()[:4] == b"\x89PNG"
    assert "| KDforAA top-K |" in (tmp_path / "results.md").read_text()
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1].startswith("demo results:")
    again = demo.run_demo(tmp_path, seeds=2)  # every run finished: all reused, same numbers
    assert again["rows"] == results["rows"]
    assert capsys.readouterr().out.count("reusing finished run") == 7

"""``handwritten evaluate``: the numbers against a recomputation, and the report's parts."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from handwritten import emnist
from handwritten.cli import main
from handwritten.evaluate import metrics


def test_metrics_by_hand():
    mapping = "aAb"
    labels = np.array([0, 0, 1, 1, 2, 2])
    probs = np.array([
        [0.7, 0.2, 0.1],  # a -> a
        [0.3, 0.6, 0.1],  # a -> A (case only)
        [0.1, 0.8, 0.1],  # A -> A
        [0.2, 0.3, 0.5],  # A -> b, A second
        [0.1, 0.1, 0.8],  # b -> b
        [0.5, 0.3, 0.2],  # b -> a, b third
    ])
    m = metrics(probs, labels, mapping)
    assert m["accuracy"] == pytest.approx(3 / 6)
    assert m["top3_accuracy"] == 1.0
    assert m["case_insensitive_accuracy"] == pytest.approx(4 / 6)
    assert m["case_only_error_share"] == pytest.approx(1 / 3)
    assert m["per_class"]["a"] == {"count": 2, "correct": 1, "accuracy": 0.5}
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 1, 1], [1, 0, 1]]
    assert {(p["true"], p["predicted"]) for p in m["confused_pairs"]} == {("a", "A"), ("A", "b"), ("b", "a")}
    assert len(m["worst_classes"]) == 3


def test_metrics_without_both_cases_has_no_case_figure():
    m = metrics(np.eye(3), np.arange(3), "012")
    assert m["accuracy"] == 1.0 and "case_insensitive_accuracy" not in m and m["confused_pairs"] == []


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_agrees_with_a_recomputation(capsys, trained_model, sample_dir):
    from handwritten.predict import Recognizer

    code, out, _ = run_cli(capsys, "evaluate", trained_model, "--data", sample_dir, "--json")
    assert code == 0
    summary = json.loads(out)
    data = emnist.load(sample_dir)
    probs = Recognizer(trained_model).predict_arrays(np.asarray(data.x_test))
    assert summary["accuracy"] == pytest.approx(float((probs.argmax(1) == data.y_test).mean()))
    assert summary["images"] == len(data.y_test) == sum(c["count"] for c in summary["per_class"].values())
    assert summary["top3_accuracy"] >= summary["accuracy"]
    assert summary["case_insensitive_accuracy"] >= summary["accuracy"]
    assert summary["synthetic"] is True and len(summary["per_class"]) == 62


def test_text_output_says_synthetic(capsys, trained_model, sample_dir):
    code, out, _ = run_cli(capsys, "evaluate", trained_model, "--data", sample_dir)
    assert code == 0
    assert "top-3 accuracy" in out and "ignoring case" in out and "NOT an EMNIST result" in out


def test_report_is_one_self_contained_page(capsys, trained_model, sample_dir, tmp_path):
    from handwritten.modelio import read_meta
    from handwritten.report import _history

    folder = tmp_path / "report"
    code, out, _ = run_cli(capsys, "evaluate", trained_model, "--data", sample_dir, "--report", folder, "--json")
    assert code == 0
    assert json.loads(out)["report"] == str(folder / "report.html")
    assert sorted(p.name for p in folder.glob("*.html")) == ["report.html"]
    for name in ("curves", "confusion", "per_class", "misclassified", "reliability", "coverage"):
        assert Image.open(folder / f"{name}.png").format == "PNG"
    page = (folder / "report.html").read_text()
    # Every picture is inside the page, and nothing is fetched from elsewhere.
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(uris) == 6
    for uri in uris:
        assert Image.open(io.BytesIO(base64.b64decode(uri))).size[0] > 300
    assert not re.search(r'(src|href)="(?!data:)', page)
    for section in ("curves", "confusion", "per_class", "misclassified", "reliability", "coverage"):
        assert f'<section id="{section}">' in page
    assert "Training curves" in page and "Confusion matrix" in page and "Misclassified test images" in page
    assert "not an EMNIST result" in page
    assert "calibration error (15 bins)" in page and "Withholding unsure answers" in page
    history = _history(read_meta(trained_model))
    assert "loss" in history and len(history["loss"]) >= 1  # so the curves plot has data to draw


def test_refuses_data_with_other_classes(capsys, trained_model, tmp_path):
    from handwritten.idx import write_idx

    rng = np.random.default_rng(0)
    for part, n in (("train", 40), ("test", 20)):
        write_idx(tmp_path / f"{part}-images", rng.integers(0, 255, (n, 28, 28), dtype=np.uint8))
        write_idx(tmp_path / f"{part}-labels", np.arange(n, dtype=np.uint8) % 10)
    code, _, err = run_cli(capsys, "evaluate", trained_model, "--data", tmp_path)
    assert code == 2
    assert "10 classes" in err and "62" in err and "Traceback" not in err


def test_missing_model_is_a_clear_error(capsys, sample_dir, tmp_path):
    code, _, err = run_cli(capsys, "evaluate", tmp_path / "nope.keras", "--data", sample_dir)
    assert code == 2 and "nope.keras" in err and "not found" in err


def test_a_report_folder_holding_other_files_of_its_names_is_refused(capsys, trained_model, sample_dir, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "report.html").write_text("my own page")
    (folder / "notes.txt").write_text("mine")
    code, _, err = run_cli(capsys, "evaluate", trained_model, "--data", sample_dir, "--report", folder)
    assert code == 2 and f"{folder}: holds report.html, not written by an earlier report" in err, err
    assert (folder / "report.html").read_text() == "my own page"
    (folder / "report.html").unlink()
    (folder / "confusion.png").write_bytes(b"my own plot")
    code, _, err = run_cli(capsys, "evaluate", trained_model, "--data", sample_dir, "--report", folder)
    assert code == 2 and "holds confusion.png" in err, err
    assert sorted(p.name for p in folder.iterdir()) == ["confusion.png", "notes.txt"]
    assert (folder / "confusion.png").read_bytes() == b"my own plot"

    # An earlier report in the folder is replaced, beside the other files.
    (folder / "confusion.png").unlink()
    for _ in range(2):
        code, _, err = run_cli(capsys, "evaluate", trained_model, "--data", sample_dir, "--report", folder)
        assert code == 0, err
    assert (folder / "notes.txt").read_text() == "mine" and (folder / "report.html").stat().st_size > 10_000

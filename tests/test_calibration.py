"""Temperature scaling and calibration measures against hand-computed cases, and the temperature a
trained model carries: stored by training, applied by Keras and ONNX alike, absent meaning 1."""

from __future__ import annotations

import json

import numpy as np
import pytest

from handwritten import calibration
from handwritten.cli import main


def test_ece_by_hand():
    # Four answers: two at 0.9 (bin 13, one right), two at 0.55 and 0.6 (bin 8, both right).
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.55, 0.45], [0.4, 0.6]])
    labels = np.array([0, 1, 0, 1])
    # bin 13: accuracy 0.5, confidence 0.9 -> |0.4| * 2/4; bin 8: accuracy 1, confidence 0.575 -> 0.425 * 2/4
    assert calibration.expected_calibration_error(probs, labels) == pytest.approx(0.5 * 0.4 + 0.5 * 0.425)
    # Perfectly right and certain: no error; a confidence of exactly 1 falls in the last bin.
    assert calibration.expected_calibration_error(np.eye(3), np.arange(3)) == pytest.approx(0.0)
    bins = calibration.reliability(probs, labels)
    assert len(bins["count"]) == calibration.BINS == 15 and sum(bins["count"]) == 4
    assert bins["count"][13] == 2 and bins["accuracy"][13] == 0.5 and bins["confidence"][13] == pytest.approx(0.9)
    assert bins["accuracy"][0] is None


def test_temperature_is_exact_softmax_scaling_and_keeps_the_answers():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (50, 7))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    scaled = calibration.apply_temperature(probs, 2.5)
    reference = np.exp(logits / 2.5) / np.exp(logits / 2.5).sum(1, keepdims=True)
    np.testing.assert_allclose(scaled, reference, atol=1e-6)
    assert (scaled.argmax(1) == probs.argmax(1)).all()
    assert calibration.apply_temperature(probs, None) is not None
    np.testing.assert_allclose(calibration.apply_temperature(probs, 1.0), probs, atol=1e-7)


def test_fit_recovers_the_temperature_of_an_overconfident_model():
    rng = np.random.default_rng(1)
    n, classes, true_t = 4000, 10, 3.0
    logits = rng.normal(0, 2.5, (n, classes))
    honest = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(classes, p=p) for p in honest])
    overconfident = calibration.apply_temperature(honest, 1 / true_t)  # sharpened: logits times 3
    fitted = calibration.fit_temperature(overconfident, labels)
    assert fitted == pytest.approx(true_t, rel=0.1)
    before = calibration.expected_calibration_error(overconfident, labels)
    after = calibration.expected_calibration_error(calibration.apply_temperature(overconfident, fitted), labels)
    assert after < before / 2


def test_coverage_curve_keeps_the_most_confident_first():
    probs = np.array([[0.95, 0.05], [0.8, 0.2], [0.6, 0.4], [0.55, 0.45]])
    labels = np.array([0, 0, 1, 0])  # the third answer (0.6) is wrong
    curve = calibration.coverage_curve(probs, labels, points=5)
    assert curve["coverage"][0] == 1.0 and curve["accuracy"][0] == 0.75
    assert dict(zip(curve["coverage"], curve["accuracy"]))[0.5] == 1.0
    assert calibration.kept_at(probs, labels, 0.7) == {"min_confidence": 0.7, "kept": 0.5, "accuracy_kept": 1.0}


def test_training_stores_a_temperature_and_predict_applies_it(trained_model, sample_dir):
    from handwritten import emnist
    from handwritten.modelio import read_meta
    from handwritten.predict import Recognizer

    meta = read_meta(trained_model)
    assert 0.05 < meta["temperature"] < 20 and meta["calibration"]["images"] > 0
    # The temperature is the one that makes the held-out images likeliest (ECE, binned, may not follow).
    c = meta["calibration"]
    assert c["nll_after"] <= c["nll_before"] + 1e-9 and 0 <= c["ece_after"] <= 1 and 0 <= c["ece_before"] <= 1
    r = Recognizer(trained_model)
    x = np.asarray(emnist.load(sample_dir).x_test)[:40]
    raw, probs = r.predict_arrays(x, calibrated=False), r.predict_arrays(x)
    np.testing.assert_allclose(probs, calibration.apply_temperature(raw, meta["temperature"]), atol=1e-6)
    assert r.info()["temperature"] == meta["temperature"]
    shown = r.predict([255 - x[0]])[0]
    assert shown["probability"] is None or shown["probability"] == pytest.approx(
        float(r.predict_arrays(shown["input"][None]).max()), abs=1e-6)


def test_keras_and_onnx_agree_on_calibrated_probabilities(trained_model, sample_dir, tmp_path):
    from handwritten import emnist
    from handwritten.export import export
    from handwritten.predict import Recognizer, read_onnx_meta

    out = tmp_path / "m.onnx"
    export(trained_model, "onnx", out)
    by_keras, by_onnx = Recognizer(trained_model), Recognizer(out)
    assert read_onnx_meta(out)["temperature"] == by_keras.temperature == by_onnx.temperature != 1.0
    x = np.asarray(emnist.load(sample_dir).x_test)[:64]
    np.testing.assert_allclose(by_onnx.predict_arrays(x), by_keras.predict_arrays(x), atol=1e-4)


def test_a_model_without_a_temperature_uses_1(trained_model, tmp_path):
    """Old files and the original script's .h5 carry no temperature: probabilities are the network's own."""
    import zipfile

    from handwritten.modelio import META_MEMBER, read_meta
    from handwritten.predict import Recognizer

    meta = read_meta(trained_model)
    meta.pop("temperature")
    old = tmp_path / "old.keras"
    with zipfile.ZipFile(trained_model) as src, zipfile.ZipFile(old, "w") as dst:
        for item in src.infolist():
            if item.filename != META_MEMBER:
                dst.writestr(item, src.read(item.filename))
        dst.writestr(META_MEMBER, json.dumps(meta))
    r = Recognizer(old)
    assert r.temperature == 1.0
    x = np.zeros((2, 28, 28), np.uint8)
    x[:, 5:23, 12:16] = 255
    np.testing.assert_array_equal(r.predict_arrays(x), r.predict_arrays(x, calibrated=False))


def test_evaluate_reports_calibration_before_and_after(trained_model, sample_dir, capsys):
    assert main(["evaluate", str(trained_model), "--data", str(sample_dir), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert 0 <= summary["calibration_error"] <= 1 and 0 <= summary["calibration_error_uncalibrated"] <= 1
    assert summary["temperature"] != 1.0
    assert summary["confident"]["min_confidence"] == calibration.MIN_CONFIDENCE == 0.5
    assert main(["evaluate", str(trained_model), "--data", str(sample_dir)]) == 0
    assert "calibration:     error" in capsys.readouterr().out


def test_validation_zero_gives_temperature_1_and_says_so(sample_dir, tmp_path, capsys):
    from handwritten.modelio import read_meta
    from handwritten.train import create_model

    out = tmp_path / "noval.keras"
    summary = create_model("model_2", out, 0.2, data=sample_dir, epochs=1, validation=0.0, seed=0, verbose=1)
    assert summary["temperature"] == 1.0 and read_meta(out)["temperature"] == 1.0
    assert "no validation images" in capsys.readouterr().err

"""The fast paths: preprocessing on OpenCV matches what it replaced; the server runs the model in onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
import speed_images

from handwritten.images import preprocess
from handwritten.predict import Recognizer


@pytest.fixture(scope="module")
def framed():
    """The generated images framed now, and as the preprocessing before OpenCV framed them."""
    reference = np.load(speed_images.REFERENCE)["framed"]
    return np.stack([preprocess(data) for _, data in speed_images.images()]), reference


def test_preprocessing_matches_the_reference_closely(framed):
    ours, reference = framed
    assert ours.shape == reference.shape == (48, 28, 28)
    difference = np.abs(ours.astype(np.float32) - reference.astype(np.float32)).mean(axis=(1, 2))
    # Grey levels of 255, per pixel: one character is now framed from half the pixels of an image
    # 256 px or more on its short side (images.ONE_CHARACTER_SIDE); about 2.4 on average, 14 at most.
    assert difference.mean() < 4.0, difference
    assert difference.max() < 24.0, difference


def test_preprocessing_gives_a_trained_model_the_same_answers(framed, trained_model):
    ours, reference = framed
    model = Recognizer(trained_model)
    same = model.predict_arrays(ours).argmax(axis=1) == model.predict_arrays(reference).argmax(axis=1)
    # The test model is trained for seconds and unsure of everything (top probabilities 0.05-0.3),
    # so a few grey levels can tip it: 45 of 48 agree. The offline sample's model_2 trained with
    # its default settings gives all 48 the same answer.
    assert same.mean() >= 0.9, same


def test_canvas_and_large_photo_are_framed_in_time():
    """Generous bounds (the targets are 1 ms and 60 ms; the rewrite took 12 ms and 350 ms): a regression to
    per-pixel Python, a full-size decode or scipy's labelling would fail them."""
    import io
    import time

    from PIL import Image, ImageDraw

    _, canvas = speed_images.images(1)[0]
    photo = Image.new("RGB", (4000, 3000), (200, 200, 190))
    ImageDraw.Draw(photo).line([(1500, 900), (2000, 2100), (2500, 900)], fill=(30, 30, 30), width=40)
    buf = io.BytesIO()
    photo.save(buf, format="JPEG")
    for data, bound, calls in ((canvas, 0.05, 20), (buf.getvalue(), 2.0, 3)):
        preprocess(data)
        took = []
        for _ in range(calls):
            started = time.thread_time()
            preprocess(data)
            took.append(time.thread_time() - started)
        assert sorted(took)[calls // 2] < bound


def test_a_large_jpeg_reports_boxes_in_its_own_pixels():
    """A JPEG decoded at a fraction of its size (directly, or by the server) still reports where its
    characters are in the file's pixels."""
    import io

    from PIL import Image, ImageDraw

    from handwritten.images import find_line
    from handwritten.uploads import open_image

    image = Image.new("L", (4000, 3000), 230)
    draw = ImageDraw.Draw(image)
    for x in (500, 2500):
        draw.line([(x, 600), (x, 2400)], fill=20, width=60)
    buf = io.BytesIO()
    image.save(buf, format="JPEG")
    opened = open_image(buf.getvalue(), 20_000_000)
    assert opened.size == (2000, 1500)  # decoded at half size
    for source in (buf.getvalue(), opened):
        _, _, characters = find_line(source)
        assert [round(c["box"][0], -2) for c in characters] == [500, 2500]
        assert all(abs(c["box"][3] - 2400) < 40 for c in characters)


# ---------------------------------------------------------------- the server's model


def test_a_keras_model_is_served_by_onnxruntime_agreeing_with_keras(trained_model):
    from handwritten.runtime import fast_recognizer

    keras = Recognizer(trained_model)
    fast, note = fast_recognizer(Recognizer(trained_model), keras.max_pixels)
    assert fast.runs_onnx and not keras.runs_onnx
    assert "onnxruntime" in note and "fallback" not in note
    assert fast.info()["runtime"] == "onnxruntime" and fast.info()["format"] == "keras"
    x = np.load(speed_images.REFERENCE)["framed"]
    assert np.abs(fast.predict_arrays(x) - keras.predict_arrays(x)).max() < 1e-4


def test_the_server_runs_onnx_and_says_so(trained_model):
    from fastapi.testclient import TestClient

    from handwritten.server import create_app

    app = create_app(trained_model, allowed_hosts=["testserver"])
    assert "runs in onnxruntime" in app.state.runtime
    with TestClient(app) as client:
        assert client.get("/api/model").json()["runtime"] == "onnxruntime"
        answer = client.post("/api/predict", content=speed_images.images(1)[0][1], headers={"Content-Type": "image/png"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) >= {"character", "probability", "top", "input_png"}
    assert body["top"][0]["character"] == body["character"]


def test_keras_is_the_fallback_when_conversion_fails(trained_model, monkeypatch, tmp_path):
    from fastapi.testclient import TestClient

    from handwritten import export
    from handwritten.server import create_app

    def broken(*args, **kwargs):
        raise RuntimeError("no converter today")

    monkeypatch.setattr(export, "to_onnx", broken)
    monkeypatch.setenv("HANDWRITTEN_CACHE", str(tmp_path))  # no earlier conversion to find
    app = create_app(trained_model, allowed_hosts=["testserver"])
    assert "runs in Keras (the fallback)" in app.state.runtime and "no converter today" in app.state.runtime
    with TestClient(app) as client:
        assert client.get("/api/model").json()["runtime"] == "keras"
        answer = client.post("/api/predict", content=speed_images.images(1)[0][1], headers={"Content-Type": "image/png"})
    assert answer.status_code == 200, answer.text


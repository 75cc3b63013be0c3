"""Collecting a person's samples through the API and continuing training on them with replay."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from handwritten import emnist, modelio
from handwritten.errors import HandwrittenError

CHARS = "7AaX"  # the person writes only some of the 62 classes


def png_of(image28: np.ndarray) -> bytes:
    """A sample image as a person's drawing: dark ink on white, larger than 28x28."""
    buf = io.BytesIO()
    Image.fromarray(255 - np.asarray(image28)).resize((112, 112)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def drawings(sample_dir) -> dict[str, list[bytes]]:
    data = emnist.load(sample_dir)
    return {ch: [png_of(data.x_test[i]) for i in np.flatnonzero(data.y_test == data.mapping.index(ch))[:4]]
            for ch in CHARS}


def client_for(model, collect=None):
    from fastapi.testclient import TestClient

    from handwritten.server import create_app

    return TestClient(create_app(model, collect=collect, allowed_hosts=["testserver"]))


def post(client, image: bytes, label: str):
    return client.post("/api/samples", files={"file": ("s.png", image, "image/png")}, data={"label": label})


@pytest.mark.slow
def test_collect_through_the_api_then_finetune_with_replay(trained_model, sample_dir, drawings, tmp_path):
    from handwritten.train import next_train

    folder = tmp_path / "mine"
    with client_for(trained_model, collect=folder) as client:
        assert client.get("/api/samples").json()["total"] == 0
        for ch, images in drawings.items():
            for image in images:
                r = post(client, image, ch)
                assert r.status_code == 201, r.text
        counts = client.get("/api/samples").json()
        assert {ch: counts["counts"][ch] for ch in CHARS} == {ch: 4 for ch in CHARS} and counts["total"] == 16
        assert f"--data {folder}" in counts["command"] and "handwritten finetune" in counts["command"]

        # One too many: undo removes the newest file only.
        extra = post(client, drawings["7"][0], "7").json()
        assert extra["counts"]["7"] == 5
        undone = client.delete("/api/samples/last").json()
        assert undone["label"] == "7" and undone["removed"] == extra["saved"] and undone["counts"]["7"] == 4
    assert sorted(p.name for p in folder.iterdir()) == ["7", "lower-a", "upper-A", "upper-X"]
    assert all(len(list((folder / d).glob("*.png"))) == 4 for d in ("7", "lower-a", "upper-A", "upper-X"))

    out = tmp_path / "mine.keras"
    summary = next_train(out, trained_model, data=folder, replay=sample_dir, epochs=1, verbose=0)
    report = summary["teach"]
    assert report["replay"] == str(sample_dir) and report["replay_images"] > 0
    assert report["samples_train"] == 12 and report["samples_held_out"] == 4 and report["sample_classes"] == 4
    for when in ("before", "after"):
        for part in ("samples", "original"):
            assert 0.0 <= report[when][part] <= 1.0, (when, part)
    assert report["original_test_images"] == summary["test_samples"] > 0
    # The model keeps all 62 classes, though the samples named 4.
    meta = modelio.read_meta(out)
    assert meta["mapping"] == emnist.SPLITS["byclass"].mapping and summary["classes"] == 62
    assert meta["config"]["data"] == str(folder) and meta["data"] == str(sample_dir.resolve())
    assert report["after"]["original"] == pytest.approx(summary["test_accuracy"], abs=1e-6)

    # evaluate reads the samples framed as the model frames images: the held-out ones are its test part.
    from handwritten.evaluate import evaluate

    judged, _ = evaluate(out, data=folder)
    assert judged["data"] == str(folder) and judged["accuracy"] == pytest.approx(report["after"]["samples"])


def test_bad_samples_get_a_json_error_and_nothing_is_written(trained_model, drawings, tmp_path):
    folder = tmp_path / "mine"
    with client_for(trained_model, collect=folder) as client:
        for label in ("AB", "", "\u00e9"):
            r = post(client, drawings["A"][0], label)
            assert r.status_code == 422 and "one character of the model's classes" in r.json()["error"], label
        r = client.post("/api/samples", files={"file": ("s.png", drawings["A"][0], "image/png")})
        assert r.status_code == 422 and "label" in r.json()["error"]
        r = client.post("/api/samples", data={"label": "A"}, files={"other": ("x", b"", "text/plain")})
        assert r.status_code in (400, 422) and "error" in r.json()
        r = post(client, b"not a picture at all", "A")
        assert r.status_code == 400 and "not an image" in r.json()["error"]
        blank = io.BytesIO()
        Image.new("L", (60, 60), 255).save(blank, format="PNG")
        r = post(client, blank.getvalue(), "A")
        assert r.status_code == 422 and "no ink" in r.json()["error"]
        r = client.post("/api/samples", content=drawings["A"][0], headers={"content-type": "image/png"})
        assert r.status_code == 415
        r = client.delete("/api/samples/last")
        assert r.status_code == 404 and "no sample saved by this server" in r.json()["error"]
    assert not [p for p in folder.rglob("*") if p.is_file()]


def test_uploads_are_bounded_like_predict(trained_model, drawings, tmp_path):
    from fastapi.testclient import TestClient

    from handwritten.server import create_app

    with TestClient(create_app(trained_model, collect=tmp_path / "mine", max_bytes=1000, allowed_hosts=["testserver"])) as client:
        r = post(client, drawings["A"][0] + b"\0" * 2000, "A")
        assert r.status_code == 413 and "limit is 1000 bytes" in r.json()["error"]


def test_without_collect_the_endpoints_are_404_and_nothing_is_written(trained_model, drawings, tmp_path,
                                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)
    with client_for(trained_model) as client:
        assert client.get("/api/samples").status_code == 404
        assert post(client, drawings["A"][0], "A").status_code == 404
        assert client.delete("/api/samples/last").status_code == 404
        assert client.get("/api/samples").json() == {"error": "Not Found"}
    assert list(tmp_path.iterdir()) == []


def test_names_are_never_reused(tmp_path):
    from handwritten.collect import SampleStore

    store = SampleStore(tmp_path / "mine", "0123456789")
    paths = [store.save("7", bytes([i]), ".png") for i in range(3)]
    assert len(set(paths)) == 3 and [p.read_bytes() for p in paths] == [b"\0", b"\1", b"\2"]
    assert not list((tmp_path / "mine" / "7").glob(".*"))  # no temporary left behind
    (tmp_path / "file").write_text("x")
    with pytest.raises(HandwrittenError, match="is a file, not a folder"):
        SampleStore(tmp_path / "file", "0123456789")


def test_replay_source(tmp_path, sample_dir):
    from handwritten.teach import check_replay_use, replay_folder

    assert replay_folder({"data": str(sample_dir)}, None)[0] == str(sample_dir)
    gone = {"data": str(tmp_path / "gone"), "parent": {"data": str(sample_dir)}}
    assert replay_folder(gone, None) == (str(sample_dir), "the data folder its parent's metadata names")
    source, why = replay_folder({"legacy": True}, None)
    assert source is None and "names no data folder" in why
    assert replay_folder({}, tmp_path)[0] == str(tmp_path)
    with pytest.raises(HandwrittenError, match="--replay .* --data .* is not one"):
        check_replay_use(sample_dir, sample_dir)


def test_finetune_takes_replay_on_the_command_line():
    from handwritten.cli import build_parser

    args = build_parser().parse_args(["finetune", "--model", "m.keras", "--data", "mine", "--out", "o.keras",
                                      "--replay", "emnist"])
    assert args.replay == "emnist"
    args = build_parser().parse_args(["serve", "m.keras", "--collect", "mine"])
    assert args.collect == "mine"


def test_mix_repeats_the_samples_and_replays_original_images_first(tmp_path):
    from handwritten import teach

    split = emnist.SPLITS["digits"]

    def dataset(value: int, n_train: int, n_test: int, label: int) -> emnist.Dataset:
        return emnist.Dataset(np.full((n_train, 28, 28), value, np.uint8), np.full(n_train, label, np.int32),
                              np.full((n_test, 28, 28), value, np.uint8), np.full(n_test, label, np.int32),
                              split=split, folder=tmp_path / str(value))

    samples, original = dataset(7, 4, 1, 7), dataset(1, 100_000, 20_000, 1)
    mixed, info = teach.mix(samples, original, seed=0)
    copies = info["copies"]
    assert copies == teach.SAMPLE_IMAGES // 4 and info["sample_images"] == 4
    assert info["replay_images"] == min(teach.MAX_REPLAY, teach.REPLAY_RATIO * copies * 4)
    assert len(mixed.y_train) == info["replay_images"] + 4 * copies
    # Training measures the framing it stores from the first images: they are the original data's.
    assert (mixed.x_train[:info["replay_images"]] == 1).all() and (mixed.y_train[-4 * copies:] == 7).all()
    assert len(mixed.y_test) == teach.REPORT_TEST_IMAGES and (mixed.y_test == 1).all()
    assert mixed.folder == original.folder and mixed.files["samples"] == samples.folder

    alone, info = teach.mix(samples, None, seed=0)
    assert info["replay_images"] == 0 and (alone.y_test == 7).all() and alone.folder == samples.folder


def test_a_sample_keeps_its_format_and_a_damaged_one_is_refused(trained_model, drawings, tmp_path):
    folder = tmp_path / "mine"
    drawn = Image.open(io.BytesIO(drawings["A"][0])).convert("L")
    jpeg, gif = io.BytesIO(), io.BytesIO()
    drawn.save(jpeg, format="JPEG", quality=90)
    drawn.save(gif, format="GIF")
    with client_for(trained_model, collect=folder) as client:
        assert post(client, jpeg.getvalue(), "A").json()["saved"].endswith(".jpg")
        assert post(client, gif.getvalue(), "A").json()["saved"].endswith(".gif")
        assert post(client, drawings["A"][1], "A").json()["saved"].endswith(".png")
        r = post(client, jpeg.getvalue()[: len(jpeg.getvalue()) // 2], "A")
        assert r.status_code == 400 and "could not be decoded" in r.json()["error"]
        r = post(client, drawings["A"][2][:60], "A")
        assert r.status_code == 400, r.text
    saved = sorted(p.suffix for p in (folder / "upper-A").iterdir())
    assert saved == [".gif", ".jpg", ".png"]

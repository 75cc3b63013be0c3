"""Shared fixtures, made once per test run: a small offline sample, a model trained on it, and the HTTP app serving it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Each test run gets its own cache, so nothing of the user's is read or written."""
    monkeypatch.setenv("HANDWRITTEN_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    """The offline synthetic sample, small: all 62 byclass classes, EMNIST file layout."""
    from handwritten.sample import write_sample

    folder = tmp_path_factory.mktemp("sample") / "emnist"
    write_sample(folder, train_per_class=60, test_per_class=10, seed=0, digit_weight=1)  # 60 of every class
    return folder


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory, sample_dir) -> Path:
    """A model_2 trained for one epoch on the small sample, saved as .keras."""
    from handwritten.train import create_model

    path = tmp_path_factory.mktemp("model") / "model_2.keras"
    create_model("model_2", str(path), 1.0, data=sample_dir, epochs=1, seed=0, verbose=0)
    return path


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    """Fashion-MNIST as Debian's dataset-fashion-mnist installs it; skipped with a reason when absent."""
    if not (FASHION / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"Fashion-MNIST not installed at {FASHION} (apt-get install dataset-fashion-mnist)")
    return FASHION


@pytest.fixture(scope="session")
def recognizer(trained_model):
    from handwritten.predict import Recognizer

    return Recognizer(trained_model)


@pytest.fixture(scope="session")
def client(recognizer):
    from fastapi.testclient import TestClient

    from handwritten.server import create_app

    with TestClient(create_app(recognizer, allowed_hosts=["testserver"])) as c:
        yield c

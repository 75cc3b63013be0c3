"""The model builders: shapes, names, parameter counts as documented, argument checks."""

from __future__ import annotations

import re

import numpy as np
import pytest

from handwritten import models


def test_registry_maps_names_to_builders():
    assert models.MODELS == {"model_1": models.model_1, "model_2": models.model_2}


@pytest.mark.parametrize("name", ["model_1", "model_2"])
@pytest.mark.parametrize("classes", [62, 10])
def test_output_is_a_softmax_over_the_classes(name, classes):
    model = models.MODELS[name](classes)
    assert model.input_shape == (None, 28, 28, 1)
    assert model.output_shape == (None, classes)
    x = np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)
    y = np.asarray(model(x, training=False))
    assert y.shape == (3, classes)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
    assert (y >= 0).all()


@pytest.mark.parametrize("name", ["model_1", "model_2"])
def test_parameter_counts_match_the_docstring(name):
    builder = models.MODELS[name]
    m = re.search(r"Parameters: ([\d,]+) for 62 classes \(([\d,]+) for 10\)", builder.__doc__)
    assert m, f"{name}'s docstring must state its parameter count"
    for classes, text in ((62, m.group(1)), (10, m.group(2))):
        assert builder(classes).count_params() == int(text.replace(",", ""))


@pytest.mark.parametrize("name", ["model_1", "model_2"])
def test_layers_are_named(name):
    first = [layer.name for layer in models.MODELS[name]().layers]
    # Keras numbers automatic names afresh for each new layer ("conv2d", "conv2d_1", ...);
    # chosen names come out the same every time.
    second = [layer.name for layer in models.MODELS[name]().layers]
    assert first == second
    assert first[0] == "image" and first[-1] == "predictions"
    assert len(set(first)) == len(first)


def test_model_1_is_the_larger_one():
    assert len(models.model_1().layers) > len(models.model_2().layers)


@pytest.mark.parametrize("bad", [1, 0, -3, 2.5, "62", True])
def test_bad_classes_are_refused_with_the_value(bad):
    with pytest.raises(ValueError, match=re.escape(f"classes={bad!r}")):
        models.model_2(bad)


def test_bad_input_shape_is_refused_with_the_value():
    with pytest.raises(ValueError, match=r"input_shape=\(28, 28\)"):
        models.model_1(62, (28, 28))
    with pytest.raises(ValueError, match="input_shape"):
        models.model_2(62, (28, 28, 3))

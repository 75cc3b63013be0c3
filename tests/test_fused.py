"""Batch normalisation trained with the fused kernel: the same numbers as Keras's own, the same model file."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from handwritten.fused import fuse_batch_norm  # noqa: E402
from handwritten.models import MODELS  # noqa: E402


def _layer_pair(channels=8, momentum=0.9):
    """Two built BatchNormalization layers with the same, non-trivial weights; the second fused."""
    weights = [np.random.default_rng(0).uniform(0.5, 2, channels).astype("float32"),  # gamma
               np.full(channels, 0.3, "float32"), np.zeros(channels, "float32"), np.ones(channels, "float32")]
    pair = []
    for _ in range(2):
        inputs = keras.Input((6, 5, channels))
        layer = keras.layers.BatchNormalization(momentum=momentum)
        model = keras.Model(inputs, layer(inputs))
        layer.set_weights(weights)
        pair.append((model, layer))
    assert fuse_batch_norm(pair[1][0]) == 1
    return pair


def test_a_fused_training_step_gives_keras_outputs_gradients_and_moving_averages():
    (_, stock), (_, fused) = _layer_pair()
    x = tf.constant(np.random.default_rng(1).normal(2.0, 3.0, (4, 6, 5, 8)).astype("float32"))
    upstream = tf.constant(np.random.default_rng(2).normal(size=(4, 6, 5, 8)).astype("float32"))
    results = []
    for layer in (stock, fused):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * upstream)
        grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
        results.append([y, *grads, layer.moving_mean, layer.moving_variance])
    names = ["outputs", "input gradient", "gamma gradient", "beta gradient", "moving mean", "moving variance"]
    for name, a, b in zip(names, *results):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-4, err_msg=name)
    # The moving variance moved, so the comparison above would see a Bessel-corrected one.
    assert not np.allclose(np.asarray(fused.moving_variance), 1.0)


def test_outside_training_the_fused_layer_is_keras_own_call():
    (_, stock), (_, fused) = _layer_pair()
    x = np.random.default_rng(3).normal(size=(3, 6, 5, 8)).astype("float32")
    np.testing.assert_array_equal(np.asarray(fused(x, training=False)), np.asarray(stock(x, training=False)))


def test_only_four_dimensional_batch_norm_is_fused_and_the_model_file_stays_stock_keras(tmp_path):
    model = MODELS["model_1"](10)
    before = model.to_json()
    # model_1: six convolution blocks at 4-D; the dense head's BN (2-D) keeps Keras's call.
    assert fuse_batch_norm(model) == 6
    assert model.get_layer("fc1_bn").call.__func__ is keras.layers.BatchNormalization.call
    assert model.to_json() == before
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", compile=False)
    assert type(loaded.get_layer("block1_a_bn")) is keras.layers.BatchNormalization
    assert fuse_batch_norm(MODELS["model_2"](10)) == 2


def test_a_model_trained_fused_predicts_what_the_stock_one_does():
    rng = np.random.default_rng(0)
    x = rng.random((96, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 96)
    predictions = []
    for fuse in (False, True):
        keras.utils.set_random_seed(1)
        model = MODELS["model_2"](10)
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
        if fuse:
            fuse_batch_norm(model)
        model.fit(x, y, batch_size=32, epochs=2, verbose=0, shuffle=False)
        # Inference uses the moving averages, so a wrong update of them shows here too.
        predictions.append(model.predict(x, verbose=0))
    # Rounding differs (a max-pooling tie may go the other way), so close, not equal.
    np.testing.assert_allclose(predictions[1], predictions[0], atol=1e-3)

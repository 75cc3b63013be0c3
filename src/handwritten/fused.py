"""Batch normalisation trained with TensorFlow's fused kernel.

Keras 3 normalises a batch in training with about ten separate operations (the moments, then
``tf.nn.batch_normalization``), each a pass over the activations and another on the way back;
tf.keras used TensorFlow's ``FusedBatchNormV3``, one operation each way (keras-team/keras-core#225).
On a CPU, where model_2's step is mostly such passes, the fused kernel trains it about 1.6 times
as fast. Only the training call changes: the layers stay Keras's own, so the saved model, its
weights and its inference are exactly what stock Keras gives.
"""

from __future__ import annotations

import types

# FusedBatchNormV3 refuses a smaller epsilon; such a layer keeps the stock call.
_MIN_EPSILON = 1.001e-5


def fuse_batch_norm(model) -> int:
    """Train ``model``'s batch normalisation of 4-D activations with the fused kernel; the number of layers.

    Applies to Keras's own ``BatchNormalization`` normalising the last axis in float32, with a
    scale and an offset, without renormalisation or synchronisation across replicas; any other
    layer, and every call outside training, goes through Keras's own code.
    """
    import keras

    fused = 0
    for layer in model._flatten_layers(include_self=False):
        if (type(layer) is keras.layers.BatchNormalization and layer.built and layer.scale and layer.center
                and not layer.renorm and not layer.synchronized and layer.epsilon >= _MIN_EPSILON
                and layer.compute_dtype == "float32" and getattr(layer.input_spec, "ndim", None) == 4
                and layer.axis in (-1, 3)):
            layer.call = types.MethodType(_fused_call, layer)
            fused += 1
    return fused


def _fused_call(layer, inputs, training=None, mask=None):
    """``BatchNormalization.call``: in training one fused kernel with the same moving averages."""
    import keras
    import tensorflow as tf

    if not (training and layer.trainable) or mask is not None or inputs.dtype != tf.float32:
        return keras.layers.BatchNormalization.call(layer, inputs, training=training, mask=mask)
    empty = tf.constant([], tf.float32)
    outputs, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
        x=inputs, scale=layer.gamma, offset=layer.beta, mean=empty, variance=empty, epsilon=layer.epsilon,
        exponential_avg_factor=1.0, data_format="NHWC", is_training=True)
    # The kernel normalises by the batch's variance but returns it Bessel-corrected; Keras keeps
    # the moving average of the variance it normalised by.
    count = tf.cast(tf.size(inputs) // tf.shape(inputs)[-1], tf.float32)
    variance = variance * ((count - 1.0) / tf.maximum(count, 1.0))
    momentum = layer.momentum
    layer.moving_mean.assign(layer.moving_mean * momentum + mean * (1.0 - momentum))
    layer.moving_variance.assign(layer.moving_variance * momentum + variance * (1.0 - momentum))
    return outputs

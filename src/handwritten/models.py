"""The networks: plain builder functions, and a registry from name to builder.

Every model takes float images scaled to [0, 1], shape ``(28, 28, 1)``, upright, and ends in
a softmax over the classes. Adding a model is one function here and one line in ``MODELS``;
``train.DEFAULTS`` may give it its own training settings.

Keras is imported inside the builders so that importing this module (and ``handwritten --help``)
does not start TensorFlow.
"""

from __future__ import annotations

# Batch normalisation's running statistics follow training at this rate. A finished model's are
# measured again after training (train._recalibrate), so the rate shows in the per-epoch
# validation figures and in checkpoints: Keras's 0.99 averages over a few hundred steps, steady
# for model_1's long runs; 0.9 settles within the few dozen steps of model_2's short ones.
# model_1 with 0.9 tested a little lower on Fashion-MNIST than with 0.99
# (benchmarks/results/fashion_accuracy.jsonl).
BN_MOMENTUM = {"model_1": 0.99, "model_2": 0.9}


def _check(classes, input_shape) -> tuple[int, tuple[int, ...]]:
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 2:
        raise ValueError(f"classes must be an integer >= 2. Received classes={classes!r}")
    shape = tuple(input_shape)
    if len(shape) != 3 or shape[-1] != 1 or min(shape[:2]) < 16:
        raise ValueError(
            f"input_shape must be (height, width, 1) with sides of at least 16. Received input_shape={input_shape!r}"
        )
    return classes, shape


def _conv_bn_relu(x, filters: int, name: str, momentum: float):
    """3x3 convolution, batch normalisation, ReLU; the bias is dropped because BN has one."""
    from keras import layers

    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=momentum, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def model_1(classes: int = 62, input_shape=(28, 28, 1), name: str = "model_1"):
    """The accurate model: a VGG-style CNN of three blocks with batch normalisation and dropout.

    Two 3x3 convolutions of 32 filters at 28x28, two of 64 at 14x14 and two of 128 at 7x7,
    each followed by batch normalisation and ReLU, with max-pooling and dropout between the
    blocks; global average pooling, a 256-unit dense layer and the softmax. It is meant for
    EMNIST byclass (62 classes) with on-the-fly augmentation, a cosine learning-rate schedule
    and early stopping (see ``train.DEFAULTS``). The README gives its measured Fashion-MNIST
    accuracy and training time (``benchmarks/fashion_accuracy.py``).

    Parameters: 337,502 for 62 classes (324,138 for 10); about 22 million multiply-adds
    per image.

    Args:
        classes: number of output classes (62 for byclass).
        input_shape: ``(height, width, 1)``; 28x28 for EMNIST.
        name: the model's name.

    Returns:
        An uncompiled ``keras.Model``.
    """
    import keras
    from keras import layers

    classes, input_shape = _check(classes, input_shape)
    momentum = BN_MOMENTUM["model_1"]
    inputs = keras.Input(shape=input_shape, name="image")
    # Block 1: strokes and edges at full resolution.
    x = _conv_bn_relu(inputs, 32, "block1_a", momentum)
    x = _conv_bn_relu(x, 32, "block1_b", momentum)
    x = layers.MaxPooling2D(2, name="block1_pool")(x)
    # Light dropout: with augmentation and weight decay, twice these rates held the training
    # accuracy of an 11-epoch run down at its validation accuracy, and it tested lower.
    x = layers.Dropout(0.05, name="block1_drop")(x)
    # Block 2: parts of characters.
    x = _conv_bn_relu(x, 64, "block2_a", momentum)
    x = _conv_bn_relu(x, 64, "block2_b", momentum)
    x = layers.MaxPooling2D(2, name="block2_pool")(x)
    x = layers.Dropout(0.1, name="block2_drop")(x)
    # Block 3: whole shapes; global pooling keeps the head small and tolerant of shifts.
    x = _conv_bn_relu(x, 128, "block3_a", momentum)
    x = _conv_bn_relu(x, 128, "block3_b", momentum)
    x = layers.GlobalAveragePooling2D(name="block3_gap")(x)
    # Classifier.
    x = layers.Dense(256, use_bias=False, name="fc1")(x)
    x = layers.BatchNormalization(momentum=momentum, name="fc1_bn")(x)
    x = layers.ReLU(name="fc1_relu")(x)
    x = layers.Dropout(0.25, name="fc1_drop")(x)
    outputs = layers.Dense(classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


def model_2(classes: int = 62, input_shape=(28, 28, 1), name: str = "model_2"):
    """The fast model: two convolution blocks and a small dense head.

    A 3x3 convolution of 16 filters at 28x28 and one of 32 at 14x14, each with batch
    normalisation, ReLU and 2x2 max-pooling, then a 128-unit dense layer with dropout and the
    softmax. Narrow convolutions keep it cheap enough to train on 60,000 images in under a
    minute on two CPU cores with its default settings (four epochs, one-cycle learning rate,
    augmentation; see ``train.DEFAULTS``); the README gives the measured figures.

    Parameters: 213,774 for 62 classes (207,066 for 10); about 1.2 million multiply-adds per image.

    Args:
        classes: number of output classes (62 for byclass).
        input_shape: ``(height, width, 1)``; 28x28 for EMNIST.
        name: the model's name.

    Returns:
        An uncompiled ``keras.Model``.
    """
    import keras
    from keras import layers

    classes, input_shape = _check(classes, input_shape)
    inputs = keras.Input(shape=input_shape, name="image")
    # Block 1.
    x = _conv_bn_relu(inputs, 16, "block1", BN_MOMENTUM["model_2"])
    x = layers.MaxPooling2D(2, name="block1_pool")(x)
    # Block 2.
    x = _conv_bn_relu(x, 32, "block2", BN_MOMENTUM["model_2"])
    x = layers.MaxPooling2D(2, name="block2_pool")(x)
    # Classifier: flattening keeps where a feature is, which matters for small characters.
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(128, activation="relu", name="fc1")(x)
    x = layers.Dropout(0.3, name="fc1_drop")(x)
    outputs = layers.Dense(classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


MODELS = {"model_1": model_1, "model_2": model_2}

"""The original script's way of training, kept here as the baseline the benchmarks compare against.

The original script is the classic Keras EMNIST example: the whole data set as one float32
array in memory, one-hot labels, ``model.fit(batch_size=64)``, and its model_1:
Conv2D(32, 3x3, relu), Conv2D(64, 3x3, relu), MaxPooling, Dropout(0.25), Flatten,
Dense(128, relu), Dropout(0.5), Dense(classes, softmax), compiled with Adadelta at Keras 3's
default learning rate (0.001) and categorical cross-entropy.
"""

from __future__ import annotations

import time
from pathlib import Path


def model_1(classes: int, input_shape=(28, 28, 1)):
    """The original script's model_1, layer for layer."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(32, (3, 3), activation="relu", name="conv1")(inputs)
    x = layers.Conv2D(64, (3, 3), activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D((2, 2), name="pool")(x)
    x = layers.Dropout(0.25, name="drop1")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(128, activation="relu", name="fc1")(x)
    x = layers.Dropout(0.5, name="drop2")(x)
    outputs = layers.Dense(classes, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs, name="original_model_1")
    # Keras 3's Adadelta defaults to learning_rate=0.001 (Keras 1 used 1.0), which is what the
    # script gets when run today.
    model.compile(optimizer=keras.optimizers.Adadelta(), loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def load_float(data: str | Path, part: float = 1.0):
    """The original way of holding data: whole float32 arrays scaled to [0, 1], one-hot labels.

    ``part`` keeps the first fraction of the training images (the test part is kept whole).
    Returns ``(x_train, y_train, x_test, y_test, classes)``.
    """
    import keras
    import numpy as np

    from handwritten.emnist import load

    dataset = load(data, mmap=False)
    n = max(1, int(len(dataset.x_train) * part))
    x_train = np.asarray(dataset.x_train[:n]).astype(np.float32)[..., None] / 255.0
    x_test = np.asarray(dataset.x_test).astype(np.float32)[..., None] / 255.0
    y_train = keras.utils.to_categorical(dataset.y_train[:n], dataset.classes)
    y_test = keras.utils.to_categorical(dataset.y_test, dataset.classes)
    return x_train, y_train, x_test, y_test, dataset.classes


def fit(model, x_train, y_train, *, epochs: int = 1, seconds: float | None = None, batch_size: int = 64) -> dict:
    """``model.fit`` the original way, timing each epoch; stop after ``seconds`` when given.

    With a time budget, training stops after the batch during which the budget ran out (the
    epoch count is then an upper bound), so the model gets no more time than it was given.
    Returns per-epoch seconds and samples per second, and the training seconds in all.
    """
    import keras

    class Clock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start = time.perf_counter()
            self.epochs = []

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_start = self.last = time.perf_counter()
            self.batches = 0

        def on_train_batch_end(self, batch, logs=None):
            self.last = time.perf_counter()
            self.batches += 1
            if seconds is not None and self.last - self.start > seconds:
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            # First batch to last, as handwritten.train counts it, so the two rates compare.
            elapsed = self.last - self.epoch_start
            samples = min(self.batches * batch_size, len(x_train))
            self.epochs.append({"seconds": elapsed, "samples": samples, "samples_per_second": samples / elapsed})

    clock = Clock()
    max_epochs = epochs if seconds is None else 10_000
    model.fit(x_train, y_train, batch_size=batch_size, epochs=max_epochs, verbose=0, callbacks=[clock])
    return {"epochs": clock.epochs, "seconds": time.perf_counter() - clock.start}

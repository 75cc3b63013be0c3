"""handwritten: train Keras networks on EMNIST and read handwritten characters.

The original script's API is kept: ``model_1()``, ``model_2()``,
``create_model(model_name, path_to_done_NN, part_for_samples)`` and
``next_train(path_to_done_NN, path_to_model, part_of_dataset)``. They are imported lazily,
so ``import handwritten`` does not start TensorFlow.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "model_1": "handwritten.models",
    "model_2": "handwritten.models",
    "MODELS": "handwritten.models",
    "create_model": "handwritten.train",
    "next_train": "handwritten.train",
    "predict": "handwritten.predict",
    "load": "handwritten.emnist",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'handwritten' has no attribute {name!r}")


__all__ = list(_LAZY)

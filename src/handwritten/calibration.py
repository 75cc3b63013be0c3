"""Probabilities that mean what they say: temperature scaling and how to measure calibration.

A network trained with cross-entropy is usually over-confident: of the answers it gives at 95%,
fewer than 95 in 100 are right. Temperature scaling (Guo et al., "On Calibration of Modern
Neural Networks", 2017) divides the logits by one number ``T`` fitted on held-out data, which
changes no answer (the ranking of classes stays) but makes the probabilities honest. The models
here end in a softmax, so ``log(p)`` stands for the logits: it differs from them by a constant
per image, which softmax ignores, so ``softmax(log(p) / T)`` is exact.

The measure is the expected calibration error (ECE): answers are put in 15 equal-width bins by
confidence, and the gaps between each bin's accuracy and its mean confidence are averaged,
weighted by the bin's share of answers.
"""

from __future__ import annotations

import numpy as np

BINS = 15  # Guo et al.'s choice; it makes figures comparable with theirs
T_RANGE = (0.05, 20.0)  # temperatures searched; beyond them a model is broken, not miscalibrated
TINY = 1e-30  # probabilities that underflowed to 0 get this, so that their logarithm is finite
# Answers below this calibrated probability are marked unsure. Calibrated, it means "more likely
# wrong than right"; a model may carry its own as meta["min_confidence"].
MIN_CONFIDENCE = 0.5


def _logits(probs: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(np.asarray(probs, dtype=np.float64), TINY))


def apply_temperature(probs: np.ndarray, temperature: float | None) -> np.ndarray:
    """``softmax(log(probs) / T)`` row by row, float32; ``T`` None or 1 gives ``probs`` back unchanged."""
    if temperature is None or temperature == 1.0:
        return np.asarray(probs, dtype=np.float32)
    z = _logits(probs) / float(temperature)
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def nll(probs: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the true classes after scaling by ``temperature``."""
    z = _logits(probs) / temperature
    z -= z.max(axis=-1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=-1))
    labels = np.asarray(labels, dtype=np.int64)
    return float(np.mean(log_norm - z[np.arange(len(labels)), labels]))


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the NLL of ``labels`` under ``probs`` (held-out data).

    A bounded one-dimensional search on ``log T``: the NLL is convex in ``1/T`` and smooth in
    ``log T``, so Brent's method finds it in a few dozen evaluations.
    """
    from scipy.optimize import minimize_scalar

    probs, labels = np.asarray(probs), np.asarray(labels)
    if len(labels) == 0:
        raise ValueError("no images to fit a temperature on")
    lo, hi = np.log(T_RANGE[0]), np.log(T_RANGE[1])
    found = minimize_scalar(lambda s: nll(probs, labels, float(np.exp(s))), bounds=(lo, hi), method="bounded",
                            options={"xatol": 1e-4})
    return float(np.exp(found.x))


def _binned(confidence: np.ndarray, correct: np.ndarray, bins: int):
    """Per bin: count, mean confidence, accuracy (bins of equal width on [0, 1], the last closed)."""
    index = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    count = np.bincount(index, minlength=bins)
    conf_sum = np.bincount(index, weights=confidence, minlength=bins)
    right = np.bincount(index, weights=correct.astype(np.float64), minlength=bins)
    safe = np.maximum(count, 1)
    return count, conf_sum / safe, right / safe


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    """ECE: sum over bins of (bin's share of answers) x |bin accuracy - bin mean confidence|."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return 0.0
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    count, mean_conf, accuracy = _binned(confidence, correct, bins)
    return float(np.sum(count / len(labels) * np.abs(accuracy - mean_conf)))


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = BINS) -> dict:
    """A reliability diagram's data: per confidence bin its edges, count, mean confidence and accuracy.

    Empty bins have ``None`` for confidence and accuracy.
    """
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    confidence = probs.max(axis=1)
    count, mean_conf, accuracy = _binned(confidence, probs.argmax(axis=1) == labels, bins)
    edges = np.linspace(0.0, 1.0, bins + 1)
    return {
        "edges": [float(e) for e in edges],
        "count": [int(c) for c in count],
        "confidence": [float(m) if c else None for m, c in zip(mean_conf, count)],
        "accuracy": [float(a) if c else None for a, c in zip(accuracy, count)],
    }


def coverage_curve(probs: np.ndarray, labels: np.ndarray, points: int = 101) -> dict:
    """Accuracy of the answers kept when the least confident ones are withheld.

    Returns ``coverage`` (share of answers kept, from 1 down), ``accuracy`` (of those kept) and
    ``threshold`` (the lowest confidence kept), at ``points`` evenly spaced coverages.
    """
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    n = len(labels)
    confidence = probs.max(axis=1)
    order = np.argsort(-confidence, kind="stable")
    hits = np.cumsum(probs.argmax(axis=1)[order] == labels[order])
    coverage, accuracy, threshold = [], [], []
    for share in np.linspace(1.0, 0.0, points)[:-1]:
        kept = max(1, int(round(share * n)))
        coverage.append(float(kept / n))
        accuracy.append(float(hits[kept - 1] / kept))
        threshold.append(float(confidence[order[kept - 1]]))
    return {"coverage": coverage, "accuracy": accuracy, "threshold": threshold}


def kept_at(probs: np.ndarray, labels: np.ndarray, min_confidence: float) -> dict:
    """Share of answers at or above ``min_confidence`` and their accuracy."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    keep = probs.max(axis=1) >= min_confidence
    right = probs.argmax(axis=1) == labels
    return {"min_confidence": float(min_confidence), "kept": float(keep.mean()) if len(keep) else 0.0,
            "accuracy_kept": float(right[keep].mean()) if keep.any() else None}


def calibrate(probs: np.ndarray, labels: np.ndarray, min_confidence: float) -> dict:
    """Fit a temperature on held-out ``probs``/``labels``; what goes into a model's metadata.

    Returns ``temperature`` and ``calibration``: the images used, the negative log-likelihood
    (what the temperature minimises) and ECE before and after, and the share and accuracy of
    answers kept at ``min_confidence`` after scaling. ECE is binned and, on a few hundred
    images, noisy: it can rise a little where the likelihood improves.
    """
    temperature = fit_temperature(probs, labels)
    scaled = apply_temperature(probs, temperature)
    return {
        "temperature": temperature,
        "calibration": {
            "images": int(len(labels)),
            "nll_before": nll(probs, labels),
            "nll_after": nll(probs, labels, temperature),
            "ece_before": expected_calibration_error(probs, labels),
            "ece_after": expected_calibration_error(scaled, labels),
            **kept_at(scaled, labels, min_confidence),
        },
    }


def for_model(model, batches, labels, min_confidence: float, verbose: int = 1) -> dict:
    """``temperature`` and ``calibration`` for a trained Keras model, fitted on its validation batches.

    Without validation images (``batches`` None) the temperature is 1 and the metadata says why.
    """
    import sys

    labels = np.asarray(labels)
    if batches is None or len(labels) == 0:
        if verbose:
            print("no validation images: probabilities left uncalibrated (temperature 1)", file=sys.stderr, flush=True)
        return {"temperature": 1.0, "calibration": {"images": 0, "note": "no validation images; temperature 1"}}
    found = calibrate(model.predict(batches, verbose=0), labels, min_confidence)
    if verbose:
        c = found["calibration"]
        print(f"calibration: temperature {found['temperature']:.3f} on {c['images']} validation images, "
              f"calibration error {c['ece_before']:.4f} -> {c['ece_after']:.4f}", file=sys.stderr, flush=True)
    return found

"""The ranges numeric options must lie in, and the one check that enforces them.

NaN, infinities and wrong types are refused with the option's name and value. So are values
far beyond any real use: they would not fail at once but exhaust memory or run for days.
"""

from __future__ import annotations

import math
import numbers

from handwritten.errors import HandwrittenError

MAX_BATCH = 65_536
# Training settings: key -> (option, range as written in messages, low, high, integer).
# "(" and ")" exclude the bound; 10,000 epochs is days of work on EMNIST even for model_2,
# and 65,536 images per batch is 200 MB of float32 input before a single activation.
TRAINING = {
    "epochs": ("--epochs", "[]", 1, 10_000, True),
    "batch_size": ("--batch-size", "[]", 1, MAX_BATCH, True),
    "learning_rate": ("--learning-rate", "(]", 0, 10, False),
    "warmup": ("warmup", "[)", 0, 1, False),
    "weight_decay": ("weight_decay", "[]", 0, 1, False),
    "validation": ("--validation", "[)", 0, 0.5, False),
    "patience": ("patience", "[]", 0, 10_000, True),
    "seed": ("--seed", "[]", 0, 2**31 - 1, True),  # seeds TensorFlow's int32-based streams too
}


def check_number(option: str, value, low, high, *, integer: bool = False, ends: str = "[]"):
    """``value`` if it is a finite number (an integer when ``integer``) in the range; else an error.

    ``ends`` is how the range is written: ``"[]"`` includes both bounds, ``"(]"`` excludes ``low``,
    ``"[)"`` excludes ``high``.
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and (isinstance(value, numbers.Integral) or not integer)
    if ok:
        number = float(value)
        ok = (math.isfinite(number) and (number >= low if ends[0] == "[" else number > low)
              and (number <= high if ends[1] == "]" else number < high))
    if not ok:
        kind = "an integer" if integer else "a number"
        raise HandwrittenError(f"{option} {value!r}: must be {kind} in {ends[0]}{low:,}, {high:,}{ends[1]}")
    return value


def check_training(values: dict) -> None:
    """Check every numeric training setting in ``values`` (a ``Settings`` as a dict)."""
    for key, (option, ends, low, high, integer) in TRAINING.items():
        check_number(option, values[key], low, high, integer=integer, ends=ends)

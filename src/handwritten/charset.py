"""Which characters an answer may be: a named set (``digits``, ``upper`` ...) or the characters themselves.

Reading a number, a postcode or a name in capitals, the caller knows more than the model: a
0 is never an O there. :func:`classes` turns such a charset into the model's class indices, and
:func:`restrict` keeps only those classes, the probabilities renormalised over them.

    >>> classes("digits", "0123456789ABC")
    array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
"""

from __future__ import annotations

import difflib
import string

import numpy as np

from handwritten.errors import HandwrittenError

NAMED = {
    "digits": string.digits,
    "upper": string.ascii_uppercase,
    "lower": string.ascii_lowercase,
    "letters": string.ascii_letters,
    "alnum": string.digits + string.ascii_letters,
}


def _show(chars) -> str:
    return " ".join(repr(c) for c in chars)


def characters(spec: str) -> str:
    """The characters a charset allows, each once, in the order given.

    Raises:
        HandwrittenError: an empty charset, or what looks like a misspelt name ("digit",
            "uppercase"): explicit characters are listed once each, so a word with a repeated
            letter, or one close to a name, is taken for a name.
    """
    text = str(spec).strip()
    if text in NAMED:
        return NAMED[text]
    names = ", ".join(NAMED)
    if not text:
        raise HandwrittenError(f"charset {spec!r} is empty: give one of {names}, or the characters themselves")
    close = difflib.get_close_matches(text.lower(), NAMED, n=1, cutoff=0.7)
    repeated = len(set(text)) < len(text)
    if close or (repeated and text.isalpha() and len(text) > 2):
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise HandwrittenError(f"unknown charset {text!r}{hint}: give one of {names}, "
                               "or the characters themselves, each once (e.g. 0123456789ABCDEF)")
    if repeated:
        text = "".join(dict.fromkeys(text))
    return text


def classes(spec: str | None, mapping: str) -> np.ndarray | None:
    """The indices into ``mapping`` of the classes a charset allows, ascending; None for no charset.

    A letter the model does not have while it has the other case (EMNIST's balanced and
    bymerge splits keep one class for c and C, o and O ...) stands for that shared class.

    Raises:
        HandwrittenError: an empty or unknown charset, or characters the model does not have,
            named.
    """
    if spec is None:
        return None
    wanted = characters(spec)
    found, missing = set(), []
    for ch in wanted:
        if ch in mapping:
            found.add(mapping.index(ch))
        elif ch.swapcase() != ch and ch.swapcase() in mapping:
            found.add(mapping.index(ch.swapcase()))
        else:
            missing.append(ch)
    if missing:
        shown = _show(missing) if len(missing) <= 12 else _show(missing[:12]) + f" and {len(missing) - 12} more"
        raise HandwrittenError(f"charset {spec!r}: the model has no class for {shown} (its classes: {mapping})")
    return np.array(sorted(found), dtype=np.int64)


def restrict(probs: np.ndarray, allowed: np.ndarray | None) -> np.ndarray:
    """``probs`` ``(..., classes)`` with every class outside ``allowed`` at 0, renormalised to sum to 1.

    Where the model gave the allowed classes no probability at all (a float underflow), they
    share it equally rather than dividing by zero.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if allowed is None:
        return probs
    out = np.zeros_like(probs)
    out[..., allowed] = probs[..., allowed]
    total = out.sum(axis=-1, keepdims=True)
    uniform = np.zeros(probs.shape[-1])
    uniform[allowed] = 1.0 / len(allowed)
    return np.where(total > 0, out / np.where(total > 0, total, 1), uniform)

"""Characters a line's segmentation split in two, joined again where the model reads them better whole.

A K whose bar and angle do not touch, an H or a 4 written in strokes that do not meet: their
marks sit side by side without overlapping, so :func:`marks.line_characters` takes them for two
characters (a K read as "I<", as "lt"). On a line of separately written characters the gap
between such pieces is far narrower than the gaps between characters, so neighbours closer than
``CLOSE`` of the line's typical gap are candidates. The model reads each candidate pair whole,
and the pair is joined when the whole is read with a higher probability than both pieces are
(the product of their probabilities): "I<" (0.5 and 0.8) becomes K (0.9), while a "1" and a
"3" written close together, each read surely, stay two characters unless the model is surer
still that they make one B.
"""

from __future__ import annotations

import numpy as np

from handwritten import marks

# A gap under this share of the line's typical gap between characters is a candidate split.
CLOSE = 0.25
# Below this many characters a line has no typical gap to compare with.
MIN_CHARACTERS = 3


def candidates(boxes: list[list[int]], rows: list[int] | None = None) -> np.ndarray:
    """Indices ``i`` whose characters ``i`` and ``i + 1`` are closer than ``CLOSE`` of the line's typical gap.

    The typical gap is the median of the gaps between neighbours, overlaps counted as 0; a line
    written without gaps (joined-up writing) has none to compare with and gives no candidates.
    With ``rows`` (each character's row of writing), only neighbours in the same row count.
    """
    if len(boxes) < MIN_CHARACTERS:
        return np.zeros(0, np.int64)
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    gaps = b[1:, 0] - b[:-1, 2]
    same_row = np.ones(len(gaps), bool) if rows is None else np.diff(np.asarray(rows)) == 0
    if not same_row.any():
        return np.zeros(0, np.int64)
    typical = float(np.median(np.clip(gaps[same_row], 0, None)))
    if typical <= 0:
        return np.zeros(0, np.int64)
    return np.flatnonzero((gaps < CLOSE * typical) & same_row)


def choose(candidate: np.ndarray, apart: np.ndarray, whole: np.ndarray) -> list[int]:
    """Which candidate pairs to join: those read better whole, no character in two pairs.

    ``apart[k]`` is the probability of character ``k`` as read alone, ``whole[j]`` that of the
    pair ``candidate[j], candidate[j] + 1`` read as one. A pair is worth joining when
    ``whole > apart[i] * apart[i + 1]``; where two such pairs share a character, the one with
    the larger gain (in log-probability) is taken. Returns the chosen ``i``, in order.
    """
    gain = np.log(np.maximum(whole, 1e-12)) - np.log(np.maximum(apart[candidate] * apart[candidate + 1], 1e-12))
    taken: set[int] = set()
    chosen = []
    for j in np.argsort(-gain, kind="stable"):
        i = int(candidate[j])
        if gain[j] <= 0:
            break
        if i in taken or i + 1 in taken:
            continue
        taken.update((i, i + 1))
        chosen.append(i)
    return sorted(chosen)


def join(groups: np.ndarray, parts: list[dict], chosen: list[int]) -> tuple[np.ndarray, list[dict]]:
    """``groups`` and ``parts`` with each chosen character ``i`` and ``i + 1`` made one.

    ``groups`` numbers each pixel with its character from 1 (0 for none); the joined character
    takes the union of the two boxes and the first one's ``space_before``.
    """
    if not chosen:
        return groups, parts
    joins_next = np.zeros(len(parts), bool)
    joins_next[chosen] = True
    # Character k's new number: k less the joins before it (a second piece takes its first's).
    starts = np.ones(len(parts), bool)
    starts[1:] = ~joins_next[:-1]
    number = np.zeros(len(parts) + 1, groups.dtype)
    number[1:] = np.cumsum(starts)
    merged: list[dict] = []
    for k, part in enumerate(parts):
        if starts[k]:
            merged.append(dict(part, box=list(part["box"])))
        else:
            merged[-1]["box"] = marks.union([merged[-1]["box"], part["box"]])
    return number[groups], merged

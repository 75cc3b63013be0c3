"""A line as context for its characters: case from height, digits or letters from the neighbours.

Each character is framed alone to 28x28, so the model cannot see that an o is half as tall as
the T before it, nor that it sits between two digits. :func:`apply` brings the line back:

- Case from height. c/C, o/O, s/S, u/U, v/V, w/W, x/X, z/Z and p/P, y/Y have one shape in
  both cases; only their height tells them apart. A character's top is measured above the
  line's baseline (fitted through the characters' bottoms, so a sloped photo is measured along
  its slope) and compared with the line's capitals and ascenders (digits, A, B, D ..., b, d, h)
  and its x-height letters (a, e, m, n, r): a tall one is the capital, a short one the small letter.
- Case from the word. A vertical bar is an l or an I at the same height; a word written in
  capitals (its letters the model is sure of, and whose case their shape shows, are all
  capitals) makes it an I, a word in small letters an l. The same word favours the capital
  of every letter the model found close to its small one (an A read a), or the small one.
- Digits or letters from the neighbours. In a word whose other characters are digits, an
  ambiguous O/0, l/1, S/5, Z/2, B/8 or g/9 goes to the digit; among letters, to the letter.
  How much the word weighs grows with the neighbours the model is sure of: one digit beside
  a character says little about it, eight in a row say it is a digit too. In a word whose
  other sure characters (at least two) are all digits, the letters written with a digit's
  shape are weighed down by ``CASE_WEIGHT`` too; all letters, those digits. A twin the model is
  sure of does not speak for its word against the characters whose shape shows their kind: an
  angular S read 5 does not make a name in capitals a mixed word.

All work as weights on the probabilities, then renormalised: the favoured case's probability
is multiplied by ``CASE_WEIGHT`` (against the other case only; for a bar, the word's case), and the word's kind weighs
digits against letters by Laplace's rule of succession, so context decides between candidates
the model found close, and overrides an answer it is fairly sure of only where a long word of
the other kind says so.
"""

from __future__ import annotations

import string

import numpy as np

# The shape barely tells these cases apart once framed, so the model's split between them says
# little: height decides unless the model prefers the other case more than 8 to 1.
CASE_WEIGHT = 8.0
# Before its characters are read, a word is digits with the classes' own odds (10 of byclass's
# 62 classes), worth this many characters; each neighbour the model is sure of adds one, split
# between digits and letters by its probabilities. One sure digit beside a character weighs a
# digit reading against a letter about 4 to 1, two about 7 to 1, eight about 25 to 1.
PRIOR_CHARACTERS = 2.0
# Only neighbours the model is this sure of count: an unsure one is as likely the other kind.
SURE = 0.8
# Heights within this fraction of the threshold between small and tall letters decide nothing.
MARGIN = 0.08

SAME_SHAPE = "cosuvwxzpy"  # k and K are both tall, so height does not tell them apart
TALL = string.digits + "ABDEFGHIJLMNQRT" + "bdfhkl"  # reaching the cap height, whatever their case
SMALL = "aemnrgq"  # reaching only the x-height (g and q below the baseline, measured from it)
# Letters whose shape shows their case: the evidence for the case a word is written in.
SHAPED_CAPITALS = "ABDEFGHJLMNQRT"
SHAPED_SMALL = "abdefghijmnqrt"
BAR = ("l", "I")  # the same bar, the same height: only the word tells them apart
DESCENDING = "gjpqy"  # their bottoms are not on the baseline
# A digit and the letters written with its shape: only the word tells them apart.
TWINS = (("0", "Oo"), ("1", "lI"), ("2", "Zz"), ("5", "Ss"), ("8", "B"), ("9", "gq"))
TWIN_CHARACTERS = "".join(d + letters for d, letters in TWINS)


def _theil_sen(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """A line ``y = a + b x`` through points, robust to a few outliers (the median of pairwise slopes)."""
    if len(x) < 2:
        return float(np.median(y)), 0.0
    i, j = np.triu_indices(len(x), k=1)
    dx = x[j] - x[i]
    ok = dx != 0
    slope = float(np.median((y[j] - y[i])[ok] / dx[ok])) if ok.any() else 0.0
    return float(np.median(y - slope * x)), slope


def heights(boxes: np.ndarray, read: list[str]) -> np.ndarray:
    """Each character's top above the line's baseline, in pixels, at its centre.

    The baseline is fitted through the bottoms of the characters, without those read as
    descending letters (g, j, p, q, y) when enough others remain.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    centre = (boxes[:, 0] + boxes[:, 2]) / 2
    on_line = np.array([c not in DESCENDING for c in read], bool)
    use = on_line if on_line.sum() >= 2 else np.ones(len(boxes), bool)
    a, b = _theil_sen(centre[use], boxes[use, 3])
    return a + b * centre - boxes[:, 1]


def tall_threshold(height: np.ndarray, read: list[str], sure: np.ndarray) -> float | None:
    """The height between the line's small letters and its tall ones; None when the line does not show it.

    Only characters the model is sure of, and whose height is known from what they are, serve
    as references. With both kinds, the threshold lies half-way; with capitals only, at 0.8 of
    their height (handwriting's x-height is 0.5-0.7 of it); with small letters only, at 1.25
    times theirs.
    """
    tall = [h for h, c, s in zip(height, read, sure) if s and c in TALL]
    small = [h for h, c, s in zip(height, read, sure) if s and c in SMALL]
    if tall and small:
        t, s = float(np.median(tall)), float(np.median(small))
        return (t + s) / 2 if t > 1.2 * s else None  # no real difference: heights say nothing
    if tall:
        return 0.8 * float(np.median(tall))
    if small:
        return 1.25 * float(np.median(small))
    return None


def case_from_height(probs: np.ndarray, boxes, mapping: str) -> np.ndarray:
    """``probs`` with each same-shape letter's probability shared between its cases by its height.

    The favoured case's share is weighed by ``CASE_WEIGHT``; the pair's total stays as the
    model gave it, so height decides c against C, never c against e or 0.
    """
    probs = np.array(probs, dtype=np.float64)
    pairs = [(mapping.index(c), mapping.index(c.upper())) for c in SAME_SHAPE if c in mapping and c.upper() in mapping]
    if len(probs) < 2 or not pairs:
        return probs
    read = [mapping[k] for k in probs.argmax(axis=1)]
    height = heights(boxes, read)
    threshold = tall_threshold(height, read, probs.max(axis=1) >= 0.5)
    if threshold is None or threshold <= 0:
        return probs
    rows = np.flatnonzero(np.abs(height - threshold) > MARGIN * threshold)
    tall = height[rows] > threshold
    for small, capital in pairs:
        weigh_pair(probs, rows, np.where(tall, capital, small), np.where(tall, small, capital))
    return probs


def weigh_pair(probs: np.ndarray, rows: np.ndarray, favoured: np.ndarray, other: np.ndarray) -> None:
    """In ``probs``, in place: in each of ``rows``, the ``favoured`` class weighed by ``CASE_WEIGHT``
    against the ``other``, the pair's total kept as it was (rows where both are 0 stay so)."""
    p_favoured, p_other = probs[rows, favoured], probs[rows, other]
    weighed = CASE_WEIGHT * p_favoured + p_other
    ok = weighed > 0
    rows, favoured, other = rows[ok], favoured[ok], other[ok]
    p_favoured, p_other, weighed = p_favoured[ok], p_other[ok], weighed[ok]
    pair = p_favoured + p_other
    probs[rows, favoured], probs[rows, other] = pair * CASE_WEIGHT * p_favoured / weighed, pair * p_other / weighed


def case_from_word(probs: np.ndarray, spaces: list[bool], mapping: str) -> np.ndarray:
    """``probs`` with each letter's two cases, and l and I, shared by the case its word is written in.

    A word whose other letters the model is ``SURE`` of, among those whose shape shows their
    case, are all capitals (at least two) weighs each capital by ``CASE_WEIGHT`` against its
    small letter; all small letters, the small ones. A name in capitals whose A the model found
    close to an a reads A; a capitalised word shows both cases and is left as read. A bar
    (``BAR``) is wholly the word's case, I among capitals and l among small letters: its
    shape does not show its case, so the model's split between l and I says nothing of it
    (a model sure that a plain bar is an l reads it so whatever its word). Each pair's total
    stays as the model gave it.
    """
    probs = np.array(probs, dtype=np.float64)
    pairs = [(mapping.index(c), mapping.index(c.upper())) for c in string.ascii_lowercase
             if c not in "il" and c in mapping and c.upper() in mapping]  # i and l: a dot, a bar
    bar = [mapping.index(c) for c in BAR] if all(c in mapping for c in BAR) else None
    if (not pairs and bar is None) or len(probs) < 3:
        return probs
    read = [mapping[k] for k in probs.argmax(axis=1)]
    sure = probs.max(axis=1) >= SURE
    is_capital = sure & np.array([c in SHAPED_CAPITALS for c in read])
    is_small = sure & np.array([c in SHAPED_SMALL for c in read])
    for word in words(spaces):
        word = np.asarray(word)
        decided, to_capital = of_one_kind(is_capital, is_small, word)
        rows, to_capital = word[decided], to_capital[decided]
        for small, capital in pairs:
            weigh_pair(probs, rows, np.where(to_capital, capital, small), np.where(to_capital, small, capital))
        if bar is not None:
            favoured, other = np.where(to_capital, bar[1], bar[0]), np.where(to_capital, bar[0], bar[1])
            probs[rows, favoured] += probs[rows, other]
            probs[rows, other] = 0.0
    return probs


def of_one_kind(first: np.ndarray, second: np.ndarray, word: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per character of ``word``: whether at least two of its word-mates are marked in ``first`` or
    ``second`` and all in the same one, and whether that one is ``first``.

    Each character's word-mates are counted as the word's counts less its own, in one pass.
    """
    a = first[word].sum() - first[word]
    b = second[word].sum() - second[word]
    return (a + b >= 2) & ((a == 0) | (b == 0)), a > 0


def twins_from_word(probs: np.ndarray, spaces: list[bool], mapping: str) -> np.ndarray:
    """``probs`` with the twins (``TWINS``) of the other kind than their word's weighed down.

    In a word whose other characters the model is ``SURE`` of (at least two) are all digits,
    the letters written with a digit's shape (O, o, l, I, Z ...) are weighed by
    ``1 / CASE_WEIGHT``; all letters, the digits written with a letter's shape (0, 1, 2, 5, 8, 9).
    Each such row is renormalised, so every other class keeps its share against the rest: a 7
    the model found close to a 9 stays as close.
    """
    probs = np.array(probs, dtype=np.float64)
    digit_twins = [mapping.index(d) for d, _ in TWINS if d in mapping]
    letter_twins = [mapping.index(c) for _, letters in TWINS for c in letters if c in mapping]
    if len(probs) < 3 or not digit_twins or not letter_twins:
        return probs
    read = [mapping[k] for k in probs.argmax(axis=1)]
    sure = probs.max(axis=1) >= SURE
    is_digit = sure & np.array([c in string.digits for c in read])
    is_letter = sure & np.array([c in string.ascii_letters for c in read])
    for word in words(spaces):
        word = np.asarray(word)
        witness = np.zeros_like(sure)
        witness[word] = witnesses(sure, read, word)
        decided, to_digit = of_one_kind(is_digit & witness, is_letter & witness, word)
        probs[np.ix_(word[decided & to_digit], letter_twins)] /= CASE_WEIGHT
        probs[np.ix_(word[decided & ~to_digit], digit_twins)] /= CASE_WEIGHT
        rows = word[decided]
        total = probs[rows].sum(axis=1, keepdims=True)
        probs[rows] /= np.where(total > 0, total, 1)
    return probs


def witnesses(sure: np.ndarray, read: list[str], word: np.ndarray) -> np.ndarray:
    """Which of ``word``'s characters witness its kind: those the model is ``SURE`` of, less the
    twins of the other kind than the one all the characters whose shape shows it agree on.

    A twin's shape is shared by a digit and a letter (an angular S is a 5's, a bar a 1's), so
    the model can be sure of the wrong kind: an S read 5 in a name in capitals would make the
    name mixed and leave its other twins as read. When at least two sure characters that are
    not twins are all of one kind, the twins of the other kind do not count; otherwise every
    sure character does (a year, 1990, is all twins). Returns a mask over ``word``.
    """
    witness = sure[word].copy()
    chars = [read[i] for i in word]
    twin = np.array([c in TWIN_CHARACTERS for c in chars], bool)
    digit = np.array([c in string.digits for c in chars], bool)
    shown = witness & ~twin
    if shown.sum() >= 2 and len(set(digit[shown])) == 1:
        witness &= ~(twin & (digit != digit[shown][0]))
    return witness


def words(spaces: list[bool]) -> list[list[int]]:
    """The indices of the characters of each word, a space starting a new one."""
    out: list[list[int]] = []
    for i, space in enumerate(spaces):
        if space or not out:
            out.append([])
        out[-1].append(i)
    return out


def run_weights(probs: np.ndarray, mapping: str, spaces: list[bool]) -> np.ndarray:
    """Per character and class, the weight its word's other characters give digits or letters (1 elsewhere).

    The chance that a character is a digit, given ``d`` digits and ``l`` letters among its
    word's other characters that the model is ``SURE`` of (counted by their probabilities), is
    ``(d + PRIOR_CHARACTERS * q) / (d + l + PRIOR_CHARACTERS)`` where ``q`` is the digits' share
    of the classes; digits are weighed by that chance over ``q``, letters by its complement
    over ``1 - q``. A character without such neighbours gets no weight. The twins among the
    sure neighbours may not count (see :func:`witnesses`).
    """
    probs = np.asarray(probs, dtype=np.float64)
    weights = np.ones_like(probs)
    digit = np.array([c in string.digits for c in mapping], bool)
    letter = np.array([c in string.ascii_letters for c in mapping], bool)
    if not digit.any() or not letter.any():
        return weights
    sure = probs.max(axis=1) >= SURE  # only the characters the model is sure of count
    read = [mapping[k] for k in probs.argmax(axis=1)]
    q = digit.sum() / (digit.sum() + letter.sum())
    digit_classes, letter_classes = np.flatnonzero(digit), np.flatnonzero(letter)
    for word in words(spaces):
        word = np.asarray(word)
        witness = witnesses(sure, read, word)
        digit_mass, letter_mass = probs[word][:, digit].sum(axis=1) * witness, probs[word][:, letter].sum(axis=1) * witness
        # Each character's neighbours: the word's totals less its own, in one pass over the word.
        has_others = witness.sum() - witness > 0
        d = digit_mass.sum() - digit_mass
        l = letter_mass.sum() - letter_mass
        chance = ((d + PRIOR_CHARACTERS * q) / (d + l + PRIOR_CHARACTERS))[has_others]
        weighed = word[has_others]
        weights[np.ix_(weighed, digit_classes)] = (chance / q)[:, None]
        weights[np.ix_(weighed, letter_classes)] = ((1 - chance) / (1 - q))[:, None]
    return weights


def apply(probs: np.ndarray, boxes, spaces: list[bool], mapping: str) -> np.ndarray:
    """A line's class probabilities ``(N, classes)`` weighed by case (height, word) and by each word's run.

    ``boxes`` are the characters' [x0, y0, x1, y1], left to right; ``spaces[i]`` says whether a
    space comes before character i. Classes at 0 (outside a charset) stay at 0, and each row
    still sums to 1.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if len(probs) == 0:
        return probs
    cased = case_from_word(case_from_height(probs, boxes, mapping), spaces, mapping)
    cased = twins_from_word(cased, spaces, mapping)
    weighted = cased * run_weights(cased, mapping, spaces)
    total = weighted.sum(axis=1, keepdims=True)
    return np.where(total > 0, weighted / np.where(total > 0, total, 1), probs)

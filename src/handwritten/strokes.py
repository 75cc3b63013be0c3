"""The pen model of the offline sample: characters written as a pen moving along strokes.

A character's skeleton is a list of strokes, each the path of the pen from touching the paper
to lifting it. Skeletons come from the single-stroke Hershey face "futural" and from
``FORMS``: the shapes people write that a printed face lacks (open 4, barred 7, slashed 0,
double-storey a and g, barred I, crossed Z, ...). Each drawing gets its own writer - slant,
width/height ratio, roundness, a pen from a fine liner to a marker, pressure changing along the
stroke - and its own smooth displacement of the stroke points, with small overshoots, gaps
between strokes that should meet, and a wobbling hand.

Coordinates are in cap heights: y = 0 at the top of a capital, 1 on the baseline, 0.4 at the
top of a small letter, 1.4 at the bottom of a descender; y grows downwards, as in an image.
"""

from __future__ import annotations

import functools

import numpy as np

# Drawing resolution: EMNIST's blur (sigma 1 px) was applied to NIST's 128x128 scans, where a
# character stands about half the field high; the sample draws at that scale, so that the blur
# softens its edges as much as it softened NIST's.
CANVAS = 128
CAP_PX = 58.0  # a capital's height on the canvas, leaving room for slant and rotation
SPLINE_STEPS = 10  # points per spline segment before resampling by arc length


def _ellipse(cx, cy, rx, ry, start=90.0, sweep=380.0, n=28):
    """Points along an ellipse, counter-clockwise as seen (angles with y upwards), from ``start`` degrees."""
    a = np.deg2rad(start + np.linspace(0.0, sweep, n))
    return list(zip(cx + rx * np.cos(a), cy - ry * np.sin(a)))


# The alternatives to the Hershey forms, in units of a tenth of a cap height (x from about 0 to 6).
# Each stroke is a smooth curve through its points; a point given twice is a corner.
FORMS = {
    "0": [[_ellipse(3, 5, 2.6, 5)], [_ellipse(3, 5, 2.6, 5), [(5, 1.2), (1, 8.8)]]],
    "1": [[[(3, 0), (3, 10)]],
          [[(1.2, 2.2), (3, 0), (3, 0), (3, 10)], [(1.2, 10), (4.8, 10)]]],
    "2": [[[(0.6, 2.5), (1.8, 0.4), (3.6, 0.1), (5.2, 1.4), (5, 3.5), (0.3, 10), (0.3, 10), (6, 10)]]],
    "3": [[[(0.5, 0), (5.5, 0), (5.5, 0), (2.5, 4), (4.5, 4.5), (5.7, 7), (4.5, 9.6), (2.3, 10), (0.4, 8.8)]]],
    "4": [[[(3.8, 0), (0.3, 6.5), (0.3, 6.5), (6, 6.5)], [(4.6, 3), (4.6, 10)]],
          [[(0.8, 0), (0.5, 6), (0.5, 6), (6, 6)], [(4.6, 0.5), (4.6, 10)]]],
    "5": [[[(1.2, 0), (0.8, 4.3), (3, 3.6), (5.3, 4.8), (5.8, 7.2), (4.5, 9.5), (2.5, 10), (0.4, 9)],
           [(1.2, 0), (5.5, 0)]]],
    "6": [[[(4.8, 0.5), (3, 0.3), (1, 3), (0.4, 7), (1.5, 9.6), (3.5, 10), (5.4, 8.5), (5.2, 6.3), (3.3, 5.4),
            (1.5, 6), (0.5, 7.5)]]],
    # 7s: barred; with a tick down from the bar's start, short or long (as many write it in Europe
    # and East Asia); the tick, bar and stem in one rounded stroke, like an eta; a curved stem.
    "7": [[[(0.3, 0), (6, 0), (6, 0), (2.2, 10)], [(1.5, 5), (5, 5)]],
          [[(0.3, 1.5), (0.3, 0), (0.3, 0), (6, 0), (6, 0), (2.5, 10)]],
          [[(0.4, 3.2), (0.2, 0), (0.2, 0), (5.2, 0), (5.2, 0), (3.6, 10)]],
          [[(0.4, 4.5), (0.3, 1.5), (1.3, 0.1), (4.3, 0), (5.4, 1.2), (5.1, 4), (4.2, 10)]],
          [[(0.3, 0), (6, 0), (6, 0), (4, 4), (3, 7), (2.7, 10)]]],
    "8": [[[(5, 1.5), (3, 0), (1, 1.5), (1.5, 3.5), (4.5, 6), (5.5, 8), (3, 10), (0.5, 8), (1.5, 6), (4.5, 3.5),
            (5, 1.5)]]],
    "9": [[_ellipse(3, 2.6, 2.5, 2.6, start=0), [(5.5, 1.5), (5.3, 10)]],
          [[(5.4, 1.5), (3, 0), (0.7, 1.6), (0.8, 4), (3, 5.2), (5.4, 3.8), (5.6, 1), (5.6, 1), (5.4, 10)]]],
    "A": [[[(0.3, 10), (1.4, 2.5), (3, 0), (4.6, 2.5), (5.7, 10)], [(1.2, 6.5), (4.8, 6.5)]]],
    "G": [[[(5.5, 2), (3.5, 0), (1, 1.5), (0.3, 5), (1.2, 8.8), (3.5, 10), (5.5, 8.5), (5.6, 6), (5.6, 6),
            (3.5, 6)]]],
    "I": [[[(3, 0), (3, 10)], [(1, 0), (5, 0)], [(1, 10), (5, 10)]]],
    "J": [[[(1.5, 0), (6, 0)], [(4.5, 0), (4.5, 7.5), (3.8, 9.6), (2.2, 10), (0.8, 8.5)]]],
    "M": [[[(0.3, 10), (1.2, 0), (1.2, 0), (3, 7), (3, 7), (4.8, 0), (4.8, 0), (5.7, 10)]],
          [[(0.5, 10), (0.5, 0), (0.5, 0), (3, 6), (3, 6), (5.5, 0), (5.5, 0), (5.5, 10)]]],
    "W": [[[(0, 0), (1.5, 10), (1.5, 10), (3, 3), (3, 3), (4.5, 10), (4.5, 10), (6, 0)]]],
    "Z": [[[(0.5, 0), (5.5, 0), (5.5, 0), (0.3, 10), (0.3, 10), (5.8, 10)], [(1.6, 5), (4.4, 5)]]],
    "a": [[[(1, 5), (2.5, 4), (4.2, 4.2), (5, 5.5), (5, 9.3), (5.6, 10)],
           [(5, 6.8), (2.8, 6.9), (0.8, 8), (1.2, 9.7), (3, 9.9), (5, 8.8)]]],
    "g": [[_ellipse(3, 5.7, 1.8, 1.6), [(4.5, 4.5), (6, 4.1)],
           [(1.8, 7), (1.3, 8), (2.5, 8.6), (4.8, 9), (5.6, 10.8), (4.6, 12.8), (2.2, 13), (0.6, 11.8), (1.4, 10.2),
            (3.5, 9.5)]],
          [_ellipse(3, 6.5, 2.2, 2.5), [(5.2, 4.2), (5.2, 11.5), (4, 13.8), (2, 14), (1, 12.5)]]],
    "q": [[_ellipse(3, 7, 2.3, 3), [(5.3, 4), (5.3, 14), (5.3, 14), (6.3, 13)]]],
    "y": [[[(1, 4), (1, 8.2), (2.2, 9.8), (4, 9.8), (5.2, 8.5)],
           [(5.2, 4), (5.2, 12.5), (4, 14), (1.8, 13.8), (1, 12.6)]]],
    "t": [[[(2.5, 1.5), (2.5, 8.8), (3.4, 10), (5, 9.6)], [(0.8, 4), (4.8, 4)]]],
    "l": [[[(2.5, 0), (2.5, 8.8), (3.2, 10), (4.3, 9.7)]]],
    "u": [[[(1, 4), (1, 8.4), (2.2, 9.9), (4, 9.9), (5, 8.4), (5, 4)]]],
    "z": [[[(0.8, 4), (5.2, 4), (5.2, 4), (0.6, 10), (0.6, 10), (5.4, 10)], [(1.8, 7), (4.2, 7)]]],
}


def _spline(points) -> np.ndarray:
    """A Catmull-Rom curve through ``points`` (n, 2); two equal neighbours make a corner."""
    p = np.asarray(points, dtype=np.float64)
    if len(p) < 3:
        return p
    padded = np.concatenate([p[:1], p, p[-1:]])
    t = np.linspace(0.0, 1.0, SPLINE_STEPS, endpoint=False)[:, None]
    t2, t3 = t * t, t * t * t
    out = []
    for i in range(len(p) - 1):
        p0, p1, p2, p3 = padded[i], padded[i + 1], padded[i + 2], padded[i + 3]
        out.append(0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2
                          + (3 * p1 - p0 - 3 * p2 + p3) * t3))
    out.append(p[-1:])
    return np.concatenate(out)


@functools.lru_cache(maxsize=None)
def _hershey() -> dict[str, tuple[np.ndarray, ...]]:
    """futural's strokes for every character, in cap heights (its H spans y = -12 .. 9)."""
    from HersheyFonts import HersheyFonts

    from handwritten.emnist import SPLITS

    font = HersheyFonts()
    font.load_default_font("futural")
    top, base = -12.0, 9.0
    glyphs = {}
    for ch in SPLITS["byclass"].mapping:
        strokes = [np.asarray(s, dtype=np.float64) for s in font.strokes_for_text(ch)]
        left = min(s[:, 0].min() for s in strokes)
        glyphs[ch] = tuple(np.column_stack([(s[:, 0] - left), s[:, 1] - top]) / (base - top) for s in strokes)
    return glyphs


@functools.lru_cache(maxsize=None)
def forms(ch: str) -> tuple[tuple[np.ndarray, ...], ...]:
    """Every skeleton of ``ch``: the Hershey form first, then those of ``FORMS``; strokes as dense paths."""
    out = [_hershey()[ch]]
    for form in FORMS.get(ch, ()):
        out.append(tuple(_spline(stroke) / 10.0 for stroke in form))
    return tuple(out)


def writer(rng: np.random.Generator) -> dict:
    """One writer's hand: how they slant, stretch, round and press, and the pen they hold."""
    return {
        "slant": float(np.clip(rng.normal(0.1, 0.15), -0.3, 0.5)),  # x shift per cap height, rightwards up
        "aspect": float(np.exp(np.clip(rng.normal(0.05, 0.22), -0.5, 0.6))),  # width/height against the skeleton's
        "rotation": float(rng.normal(0.0, 4.0)),  # degrees
        "roundness": float(rng.uniform(0.0, 0.05)),  # cap heights over which corners are smoothed
        "width": float(np.exp(rng.uniform(np.log(0.035), np.log(0.16)))),  # pen width in cap heights
        "pressure": float(rng.uniform(0.0, 0.35)),  # how much the width changes along a stroke
        "wobble": float(rng.uniform(0.0, 0.006)),  # a shaky hand, in cap heights
        "sloppiness": float(rng.uniform(0.005, 0.035)),  # overshoots and gaps where strokes meet
        "warp": float(rng.uniform(0.0, 0.05)),  # the smooth displacement of the whole drawing
    }


def _resample(path: np.ndarray, step: float, start: float = 0.0, end: float = 0.0) -> np.ndarray:
    """Points every ``step`` along ``path``, lengthened (positive) or shortened (negative) at its start
    and end by those lengths along the path's direction there: overshoots and gaps."""
    if len(path) < 2:
        path = np.concatenate([path, path])
    seg = np.hypot(*np.diff(path, axis=0).T)
    along = np.concatenate([[0.0], np.cumsum(seg)])
    total = along[-1]
    first, last = -max(start, -total / 3), total + max(end, -total / 3)
    n = max(2, int(np.ceil((last - first) / step)) + 1)
    at = np.linspace(first, last, n)
    # np.interp holds the end values beyond the path; extend along the end segments instead.
    out = np.column_stack([np.interp(at, along, path[:, 0]), np.interp(at, along, path[:, 1])])
    if start > 0 or end > 0:
        head = (path[1] - path[0]) / max(seg[0], 1e-9)
        tail = (path[-1] - path[-2]) / max(seg[-1], 1e-9)
        before, after = at < 0, at > total
        out[before] = path[0] + head * at[before, None]
        out[after] = path[-1] + tail * (at[after, None] - total)
    return out


def _smooth_noise(n: int, rng: np.random.Generator, every: float) -> np.ndarray:
    """``n`` values of a random signal that changes course about every ``every`` points, spread about 1.

    Straight lines between random knots: as smooth as a hand needs, at a fraction of a filter's cost.
    """
    knots = rng.normal(0.0, 1.0, int(n / every) + 2)
    return np.interp(np.arange(n) / every, np.arange(len(knots)), knots)


def pen_paths(skeleton, style: dict, rng: np.random.Generator, step: float = 0.01):
    """The strokes as the writer's pen moved: ``[(points (n, 2) in cap heights, width factors (n,)), ...]``."""
    from scipy.ndimage import gaussian_filter1d

    waves = [(rng.normal(0.0, 2.5, 2), rng.uniform(0, 2 * np.pi), rng.normal(0.0, 1.0, 2)) for _ in range(3)]
    paths = []
    for stroke in skeleton:
        sloppy = style["sloppiness"]
        path = _resample(np.asarray(stroke, dtype=np.float64), step, *rng.normal(0.0, sloppy, 2))
        path = path + rng.normal(0.0, sloppy / 2, 2)
        if style["roundness"] > 0 and len(path) > 4:
            path = gaussian_filter1d(path, style["roundness"] / step, axis=0, mode="nearest")
        n = len(path)
        path = path + style["wobble"] * np.column_stack([_smooth_noise(n, rng, 15), _smooth_noise(n, rng, 15)])
        for freq, phase, direction in waves:
            path = path + style["warp"] / 2 * np.sin(path @ freq * 2 * np.pi + phase)[:, None] * direction
        pressure = 1.0 + style["pressure"] * _smooth_noise(n, rng, 30)
        paths.append((path, np.clip(pressure, 0.4, 1.6)))
    return paths


def draw(ch: str, rng: np.random.Generator):
    """``ch`` written by a random writer in one of its forms: a CANVAS x CANVAS PIL image, white ink on black."""
    from PIL import Image, ImageDraw

    options = forms(ch)
    skeleton = options[rng.integers(len(options))]
    style = writer(rng)
    paths = pen_paths(skeleton, style, rng)
    points = np.concatenate([p for p, _ in paths])
    angle = np.deg2rad(style["rotation"])
    cos, sin = np.cos(angle), np.sin(angle)
    # Slant (top to the right), then width, then rotation, in cap heights about the glyph's middle.
    linear = np.array([[cos, -sin], [sin, cos]]) @ np.array([[style["aspect"], -style["slant"]], [0.0, 1.0]])
    low, high = points.min(axis=0), points.max(axis=0)
    centre = (low + high) / 2
    moved = [((p - centre) @ linear.T * CAP_PX, w) for p, w in paths]
    extent = max(float(np.abs(np.concatenate([m for m, _ in moved])).max()), 1e-6)
    width = style["width"] * CAP_PX
    # A character wider or taller than the canvas is drawn smaller; framing scales it anyway.
    fit = min(1.0, (CANVAS / 2 - width) / extent)
    # A dab of ink every ~third of the pen's width: the stroke looks continuous at any width.
    stride = max(1, int(round(0.35 * width / (0.01 * CAP_PX * fit))))
    dabs = [np.column_stack([np.concatenate([path[::stride], path[-1:]]) * fit + CANVAS / 2,
                             np.maximum(0.5, width / 2 * np.concatenate([factor[::stride], factor[-1:]]))])
            for path, factor in moved]
    image = Image.new("L", (CANVAS, CANVAS), 0)
    pen = ImageDraw.Draw(image)
    for x, y, r in np.concatenate(dabs).tolist():
        pen.ellipse((x - r, y - r, x + r, y + r), fill=255)
    return image

"""Images that hold no single character, for measuring how often they are rejected.

:func:`generate` draws, from a seed, blank pages and canvases, lone specks, noise, scribbles,
geometric shapes, crossed-out and hatched marks, several characters on one image, and
textures that stand for photos with no writing. Each comes as a grey uint8 image (dark ink
on light paper, or light on dark) with its kind. ``benchmarks/bench_rejection.py`` measures
the share rejected; the tests use a few of each kind.

    >>> from handwritten.negatives import generate
    >>> items = generate(count=240, seed=0)       # [(kind, uint8 (H, W)), ...]
"""

from __future__ import annotations

import functools

import numpy as np

KINDS = ("blank", "speck", "noise", "scribble", "shape", "crossed", "several", "texture")
CANVAS = 280  # the page's drawing canvas
TEXT = "ABCDEFGHKMNPRSTWXYZabdeghkmnpqrt2345689"  # characters for "several" and "crossed"


def _paper(rng, size: tuple[int, int], photo: bool) -> np.ndarray:
    """A white canvas, or photo-like paper: off-white, unevenly lit, a little noisy."""
    h, w = size
    if not photo:
        return np.ones((h, w), np.float32)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    light = 0.85 + 0.08 * np.sin(rng.uniform(1, 3) * xx + rng.uniform(0, 6)) + 0.05 * yy * rng.uniform(-1, 1)
    return np.clip(light + rng.normal(0, 0.015, (h, w)), 0, 1).astype(np.float32)


def _size(rng) -> tuple[int, int]:
    if rng.random() < 0.5:
        return CANVAS, CANVAS
    return int(rng.integers(300, 900)), int(rng.integers(300, 900))


def _draw(page: np.ndarray, paint) -> np.ndarray:
    """Ink drawn by ``paint(ImageDraw, width, height)`` onto ``page`` (dark ink)."""
    from PIL import Image, ImageDraw

    h, w = page.shape
    layer = Image.new("L", (w, h), 0)
    paint(ImageDraw.Draw(layer), w, h)
    ink = np.asarray(layer, np.float32) / 255.0
    return page * (1 - 0.85 * ink)


def _finish(rng, page: np.ndarray) -> np.ndarray:
    """uint8, sometimes inverted (light ink on a dark board)."""
    if rng.random() < 0.15:
        page = 1.0 - page
    return np.clip(np.round(page * 255), 0, 255).astype(np.uint8)


def _curve(rng, n: int, centre, spread: float) -> list[tuple[float, float]]:
    """A tangled path of ``n`` points: a few random sinusoids per axis, like a pen going back and forth."""
    t = np.linspace(0, 1, n)[:, None]
    freq, phase = rng.uniform(2, 14, (4, 2)), rng.uniform(0, 2 * np.pi, (4, 2))
    path = sum(np.sin(2 * np.pi * freq[k] * t + phase[k]) / (k + 1) for k in range(4))
    path = path / np.abs(path).max(axis=0) * spread
    return [(float(centre[0] + x), float(centre[1] + y)) for x, y in path]


@functools.lru_cache(maxsize=None)
def _glyphs(face: str = "futural") -> dict:
    from HersheyFonts import HersheyFonts

    font = HersheyFonts()
    font.load_default_font(face)
    return {ch: [np.asarray(s, np.float64) for s in font.strokes_for_text(ch)] for ch in TEXT}


def _text(draw, rng, chars: str, x: float, y: float, height: float, pen: int) -> None:
    """Characters in a stroke font, left to right from (x, y) (top left), ``height`` px tall."""
    scale = height / 21.0  # Hershey capitals are 21 units tall
    top = np.concatenate(_glyphs()["A"]).min(axis=0)[1]  # one line for all: lower case sits lower
    for ch in chars:
        strokes = _glyphs()[ch]
        points = np.concatenate(strokes)
        x0, y0 = points[:, 0].min(), top
        x1 = points.max(axis=0)[0]
        jitter = rng.normal(0, 0.03 * height, 2)
        for s in strokes:
            pts = [(x + (px - x0) * scale + jitter[0], y + (py - y0) * scale + jitter[1]) for px, py in s]
            draw.line(pts, fill=255, width=pen, joint="curve")
        x += (x1 - x0) * scale + rng.uniform(0.15, 0.5) * height


def blank(rng) -> np.ndarray:
    page = _paper(rng, _size(rng), photo=rng.random() < 0.6)
    return _finish(rng, page)


def speck(rng) -> np.ndarray:
    page = _paper(rng, _size(rng), photo=rng.random() < 0.5)

    def paint(draw, w, h):
        for _ in range(int(rng.integers(1, 3))):
            r = rng.uniform(1.5, 0.02 * min(w, h))
            x, y = rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h
            draw.ellipse((x - r, y - r, x + r, y + r * rng.uniform(0.6, 1.4)), fill=255)

    return _finish(rng, _draw(page, paint))


def noise(rng) -> np.ndarray:
    from scipy import ndimage

    h, w = _size(rng)
    kind = rng.integers(3)
    if kind == 0:  # sensor noise, strong
        page = rng.normal(0.6, rng.uniform(0.15, 0.35), (h, w))
    elif kind == 1:  # salt and pepper
        page = np.where(rng.random((h, w)) < rng.uniform(0.05, 0.3), rng.integers(0, 2, (h, w)), 0.9)
    else:  # blotchy noise
        page = ndimage.gaussian_filter(rng.random((h, w)), rng.uniform(1, 4))
        page = (page - page.min()) / max(np.ptp(page), 1e-6)
    return _finish(rng, np.clip(page, 0, 1).astype(np.float32))


def scribble(rng) -> np.ndarray:
    page = _paper(rng, _size(rng), photo=rng.random() < 0.3)

    def paint(draw, w, h):
        side = min(w, h)
        pen = max(2, int(side * rng.uniform(0.01, 0.05)))
        centre = (w / 2 + rng.normal(0, 0.05 * w), h / 2 + rng.normal(0, 0.05 * h))
        draw.line(_curve(rng, int(rng.integers(150, 400)), centre, side * rng.uniform(0.2, 0.4)),
                  fill=255, width=pen, joint="curve")

    return _finish(rng, _draw(page, paint))


def shape(rng) -> np.ndarray:
    page = _paper(rng, _size(rng), photo=rng.random() < 0.3)

    def paint(draw, w, h):
        side = min(w, h) * rng.uniform(0.3, 0.7)
        cx, cy = w / 2 + rng.normal(0, 0.05 * w), h / 2 + rng.normal(0, 0.05 * h)
        box = (cx - side / 2, cy - side / 2 * rng.uniform(0.6, 1), cx + side / 2, cy + side / 2 * rng.uniform(0.6, 1))
        pen = max(2, int(side * rng.uniform(0.03, 0.08)))
        kind = int(rng.integers(6))
        if kind == 0:
            draw.rectangle(box, fill=255)
        elif kind == 1:
            draw.ellipse(box, fill=255)
        elif kind == 2:
            draw.regular_polygon((cx, cy, side / 2), int(rng.integers(3, 8)), rotation=rng.uniform(0, 90), fill=255)
        elif kind == 3:  # a five-pointed star drawn in one line
            a = np.pi / 2 + np.arange(6) * 4 * np.pi / 5 + rng.uniform(0, 0.3)
            draw.line([(cx + side / 2 * np.cos(t), cy - side / 2 * np.sin(t)) for t in a], fill=255, width=pen,
                      joint="curve")
        elif kind == 4:  # a grid, like a noughts-and-crosses board with more lines
            n = int(rng.integers(3, 6))
            for t in np.linspace(0, 1, n):
                draw.line((box[0] + t * (box[2] - box[0]), box[1], box[0] + t * (box[2] - box[0]), box[3]), fill=255,
                          width=pen)
                draw.line((box[0], box[1] + t * (box[3] - box[1]), box[2], box[1] + t * (box[3] - box[1])), fill=255,
                          width=pen)
        else:  # a box with both diagonals
            draw.rectangle(box, outline=255, width=pen)
            draw.line((box[0], box[1], box[2], box[3]), fill=255, width=pen)
            draw.line((box[0], box[3], box[2], box[1]), fill=255, width=pen)

    return _finish(rng, _draw(page, paint))


def crossed(rng) -> np.ndarray:
    page = _paper(rng, _size(rng), photo=rng.random() < 0.3)

    def paint(draw, w, h):
        height = min(w, h) * rng.uniform(0.35, 0.6)
        pen = max(2, int(height * rng.uniform(0.04, 0.08)))
        x, y = w / 2 - height * 0.4, h / 2 - height / 2
        _text(draw, rng, TEXT[int(rng.integers(len(TEXT)))], x, y, height, pen)
        box = (x - 0.2 * height, y - 0.1 * height, x + height, y + 1.1 * height)
        if rng.random() < 0.5:  # hatched over
            for t in np.linspace(0, 1, int(rng.integers(6, 12))):
                draw.line((box[0] + t * (box[2] - box[0]), box[3], box[0] + t * (box[2] - box[0]) + 0.5 * height, box[1]),
                          fill=255, width=pen)
        else:  # scribbled over
            draw.line(_curve(rng, 200, ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), 0.5 * height), fill=255,
                      width=pen, joint="curve")

    return _finish(rng, _draw(page, paint))


def several(rng) -> np.ndarray:
    h, w = (CANVAS, CANVAS) if rng.random() < 0.4 else (int(rng.integers(200, 400)), int(rng.integers(500, 1000)))
    page = _paper(rng, (h, w), photo=rng.random() < 0.4)
    n = int(rng.integers(2, 6))

    def paint(draw, w, h):
        height = min(h * 0.5, w / (n * 1.3))
        pen = max(2, int(height * rng.uniform(0.05, 0.1)))
        chars = "".join(TEXT[int(k)] for k in rng.integers(len(TEXT), size=n))
        _text(draw, rng, chars, w * 0.05, h / 2 - height / 2, height, pen)

    return _finish(rng, _draw(page, paint))


def texture(rng) -> np.ndarray:
    """Photo-like surfaces with nothing written: wood grain, fabric, gravel, bricks, leaves."""
    from scipy import ndimage

    h, w = _size(rng)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = int(rng.integers(5))
    if kind == 0:  # wood grain
        warp = ndimage.gaussian_filter(rng.normal(0, 1, (h, w)), 20) * 400
        page = 0.5 + 0.3 * np.sin((yy + warp) / rng.uniform(3, 10))
    elif kind == 1:  # woven fabric
        f = rng.uniform(0.3, 1.0)
        page = 0.5 + 0.2 * np.sin(xx * f) * np.sin(yy * f) + rng.normal(0, 0.08, (h, w))
    elif kind == 2:  # gravel
        page = ndimage.gaussian_filter(rng.random((h, w)), rng.uniform(3, 8))
        page = (page - page.min()) / max(np.ptp(page), 1e-6)
    elif kind == 3:  # bricks
        bh, bw = rng.uniform(20, 50), rng.uniform(50, 120)
        row = (yy // bh).astype(int)
        mortar = ((yy % bh) < 4) | (((xx + (row % 2) * bw / 2) % bw) < 4)
        page = np.where(mortar, 0.85, 0.45) + rng.normal(0, 0.05, (h, w))
    else:  # leaves: many overlapping blotches
        page = np.full((h, w), 0.7, np.float32)
        for _ in range(int(rng.integers(30, 80))):
            cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(10, 60)
            page[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0.1, 0.9)
        page = ndimage.gaussian_filter(page, 1.5)
    return _finish(rng, np.clip(page, 0, 1).astype(np.float32))


def generate(count: int = 240, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """``count`` non-character images, the kinds in turn: ``[(kind, uint8 (H, W)), ...]``."""
    rng = np.random.default_rng(seed)
    makers = {kind: globals()[kind] for kind in KINDS}
    return [(KINDS[i % len(KINDS)], makers[KINDS[i % len(KINDS)]](rng)) for i in range(count)]

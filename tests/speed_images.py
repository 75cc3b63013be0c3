"""Generated images for checking the fast preprocessing against the outputs it replaced.

``framed_reference.npz`` beside this file holds what ``images.preprocess`` framed from these
images before it was rewritten on OpenCV (scipy.ndimage and Pillow, commit 47a9488); rebuild it
only on purpose: ``python tests/speed_images.py`` with that version on the path.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

REFERENCE = Path(__file__).with_name("data") / "framed_reference.npz"
GLYPHS = {  # polylines on a 100x100 sheet
    "A": [[(20, 90), (50, 10), (80, 90)], [(32, 60), (68, 60)]],
    "1": [[(35, 25), (52, 10), (52, 90)]],
    "7": [[(20, 12), (80, 12), (40, 90)]],
    "L": [[(30, 10), (30, 90), (75, 90)]],
    "T": [[(15, 12), (85, 12)], [(50, 12), (50, 90)]],
    "O": [[(50, 10), (80, 30), (80, 70), (50, 90), (20, 70), (20, 30), (50, 10)]],
    "Z": [[(20, 12), (80, 12), (20, 88), (80, 88)]],
    "4": [[(60, 90), (60, 10), (15, 65), (85, 65)]],
}


def images(count: int = 48, seed: int = 0) -> list[tuple[str, bytes]]:
    """``count`` images as ``(glyph, encoded bytes)``: canvases, scans and photos of a drawn glyph."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    out = []
    names = list(GLYPHS)
    for i in range(count):
        glyph = names[i % len(names)]
        kind = ("canvas", "scan", "photo")[i % 3]
        w, h = {"canvas": (280, 280), "scan": (200, 260), "photo": (900, 700)}[kind]
        side = rng.uniform(0.35, 0.8) * min(w, h)
        x0, y0 = rng.uniform(0.05 * w, w - side - 0.05 * w), rng.uniform(0.05 * h, h - side - 0.05 * h)
        pen = max(2, int(side * rng.uniform(0.04, 0.12)))
        if kind == "canvas":
            image = Image.new("RGBA", (w, h), (0, 0, 0, 0))
            ink, fmt = (0, 0, 0, 255), "PNG"
        else:
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            light = 215 - rng.uniform(0, 70) * xx / w - rng.uniform(0, 40) * yy / h
            paper = np.clip(light + rng.normal(0, 3, (h, w)), 0, 255).astype(np.uint8)
            image = Image.fromarray(paper).convert("RGB")
            ink, fmt = (int(rng.uniform(10, 60)),) * 3, "PNG" if kind == "scan" else "JPEG"
        draw = ImageDraw.Draw(image)
        for line in GLYPHS[glyph]:
            points = [(x0 + (x + rng.normal(0, 2)) * side / 100, y0 + (y + rng.normal(0, 2)) * side / 100) for x, y in line]
            draw.line(points, fill=ink, width=pen, joint="curve")
        if kind == "scan" and i % 2:  # light ink on dark, too
            image = Image.fromarray(255 - np.asarray(image))
        buf = io.BytesIO()
        image.save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        out.append((glyph, buf.getvalue()))
    return out


if __name__ == "__main__":
    from handwritten.images import preprocess

    REFERENCE.parent.mkdir(exist_ok=True)
    framed = np.stack([preprocess(data) for _, data in images()])
    np.savez_compressed(REFERENCE, framed=framed)
    print(f"wrote {REFERENCE}: {framed.shape}")

"""Write a few photo-like images for the demo: characters drawn dark on light paper, with margins.

They stand in for a person's own scans: larger than 28x28, the other polarity, a grey paper
tone, uneven margins; and two lines for ``handwritten predict --line``, a number and a name in
capitals, read with ``--charset digits`` and ``--charset upper`` as a person reading them would.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from handwritten.sample import render_character


def paper_image(glyph: np.ndarray, rng: np.random.Generator, size: int) -> Image.Image:
    """A 28x28 bright-on-dark glyph as dark ink on a larger sheet of light paper."""
    ink = Image.fromarray(glyph).resize((size, size), Image.BICUBIC)
    w, h = size + int(rng.integers(40, 160)), size + int(rng.integers(40, 160))
    paper = np.full((h, w), int(rng.integers(215, 250)), dtype=np.float32)
    x, y = int(rng.integers(10, w - size - 10)), int(rng.integers(10, h - size - 10))
    alpha = np.asarray(ink, dtype=np.float32) / 255.0
    paper[y:y + size, x:x + size] *= 1.0 - 0.85 * alpha
    return Image.fromarray(paper.astype(np.uint8)).convert("RGB")


def line_image(word: str, rng: np.random.Generator) -> Image.Image:
    """The glyphs of ``word`` side by side with a little space between them, dark on light paper."""
    glyphs = [np.pad(render_character(ch, rng, rotation=3.0), ((0, 0), (2, 2))) for ch in word]
    line = Image.fromarray(np.concatenate(glyphs, axis=1)).resize((32 * 4 * len(glyphs), 28 * 4), Image.BICUBIC)
    paper = np.full((line.height + 80, line.width + 80), 240, dtype=np.float32)
    paper[40:40 + line.height, 40:40 + line.width] *= 1.0 - 0.85 * np.asarray(line, dtype=np.float32) / 255.0
    return Image.fromarray(paper.astype(np.uint8))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="demo/images", help="output folder (default: %(default)s)")
    parser.add_argument("--chars", default="7Ak3e", help="characters to draw (default: %(default)s)")
    parser.add_argument("--number", default="90210", help="the line of digits (default: %(default)s)")
    parser.add_argument("--name", default="KERAS", help="the line of capitals (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default: %(default)s)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    for ch in args.chars:
        name = f"char-{ch}{'-upper' if ch.isupper() else ''}.png"
        paper_image(render_character(ch, rng, rotation=4.0), rng, int(rng.integers(60, 140))).save(out / name)
    for stem, word in (("line-number", args.number), ("line-name", args.name)):
        line_image(word, rng).save(out / f"{stem}.png")
    print(f"wrote {len(args.chars)} character images, line-number.png and line-name.png to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

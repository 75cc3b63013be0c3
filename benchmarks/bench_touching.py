"""Touching characters: real lines whose characters are moved together until they touch or overlap.

People write the characters of a number or a name close, and their strokes meet. Each real
line of ``../shared/real-handwriting`` (or ``--images DIR``) that is one word (no space in its
label: a line's spaces would be lost) is rebuilt in memory (nothing is written) from its
characters as the package finds them, each moved left until it touches the one before, or
overlaps it by 2 or 4 px; every copy is read by the package as it is and with the splitting of
touching characters switched off (``handwritten.splitting.split_touching``), in the same run.
Figures: the characters' edit distance to the labels in all, and the lines read exactly. The
model is model_2 trained with its defaults on the default offline sample, or ``--model FILE``.

    python benchmarks/bench_touching.py [--quick] [--model FILE] [--images DIR]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

import bench_real_handwriting as real
import common

NAME = "touching"
GAPS = {"touching": 0, "2 px over": -2, "4 px over": -4}  # the room left between characters, in pixels
MARGIN = 20  # white paper around the rebuilt line, in pixels


def _extra(parser) -> None:
    parser.add_argument("--images", type=Path, default=real.IMAGES,
                        help="folder with labels.json and the images it names (default: %(default)s)")
    parser.add_argument("--model", default=None, metavar="FILE",
                        help="score this model file instead of training model_2 on the sample (default: %(default)s)")


def squeezed(path: Path, gap: int) -> np.ndarray:
    """The line at ``path`` rebuilt with ``gap`` px between its characters (negative: overlapping),
    dark ink on white, uint8, in the pixels the package works in."""
    from scipy import ndimage

    from handwritten import images

    ink, groups, _ = images.find_line(str(path))
    pieces = [(b[0].start, np.where(groups[b] == k + 1, ink[b], 0))
              for k, b in enumerate(ndimage.find_objects(groups)) if b is not None]
    width = sum(p.shape[1] for _, p in pieces) + 2 * MARGIN + max(gap, 0) * len(pieces)
    out = np.zeros((ink.shape[0], width), np.float32)
    x = MARGIN
    for top, piece in pieces:
        h, w = piece.shape
        out[top:top + h, x:x + w] = np.maximum(out[top:top + h, x:x + w], piece)
        x += w + gap
    return (255 - 255 * np.clip(out[:, :x - gap + MARGIN], 0, 1)).astype(np.uint8)  # the last one ends at x - gap


def edit_distance(a: str, b: str) -> int:
    """Levenshtein's distance: insertions, deletions and substitutions turning ``a`` into ``b``."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ca != cb))
    return row[-1]


def _without_splitting():
    """A context in which ``read_line`` leaves characters written touching as one mark."""
    from unittest import mock

    from handwritten import splitting

    return mock.patch.object(splitting, "split_touching", lambda ink, groups, parts, framed, probs, why, read, frame: (
        groups, parts, framed, probs, why))


def _reads(recognizer, copies: dict) -> dict:
    return {key: recognizer.read_line(image)["text"] for key, image in copies.items()}


def _counts(reads: dict, labels: dict) -> dict:
    out = {}
    for style in GAPS:
        keys = [k for k in reads if k[1] == style]
        out[style] = {"distance": sum(edit_distance(reads[k], labels[k[0]]) for k in keys),
                      "exact": sum(reads[k] == labels[k[0]] for k in keys), "lines": len(keys)}
    return out


def main() -> int:
    args = common.parse_args(__doc__.splitlines()[0], _extra)
    started = time.perf_counter()
    entries = {n: e for n, e in real._labels(args.images).items() if len(e["label"]) > 1 and " " not in e["label"]}
    details = {"images": str(args.images), "lines": sorted(entries), "gaps_px": GAPS}
    model = real.model_to_score(args.model, "touching", details)
    from handwritten.predict import Recognizer

    recognizer = Recognizer(model)
    labels = {name: e["label"] for name, e in entries.items()}
    copies = {(name, style): squeezed(e["file"], gap) for name, e in entries.items() for style, gap in GAPS.items()}
    split = _reads(recognizer, copies)
    as_they_are = {name: recognizer.read_line(str(e["file"]))["text"] for name, e in entries.items()}
    with _without_splitting():
        whole = _reads(recognizer, copies)
        unsplit_as_they_are = {name: recognizer.read_line(str(e["file"]))["text"] for name, e in entries.items()}
    ours, before = _counts(split, labels), _counts(whole, labels)
    details.update(split=ours, not_split=before, reads={f"{n} {s}": {"split": split[n, s], "not_split": whole[n, s]}
                                                         for n, s in copies},
                   lines_as_they_are_unchanged=sum(as_they_are[n] == unsplit_as_they_are[n] for n in entries))
    figures = []
    for style in GAPS:
        figures.append(common.figure(
            f"Touching characters ({style}): edit distance to the labels", ours[style]["distance"],
            f"characters, {ours[style]['lines']} lines",
            note=(f"without the splitting {before[style]['distance']}; lines read exactly {ours[style]['exact']} "
                  f"(without: {before[style]['exact']})")))
        print(f"{style}: edit distance {ours[style]['distance']} (without splitting {before[style]['distance']}), "
              f"exact {ours[style]['exact']} (without {before[style]['exact']})", file=sys.stderr, flush=True)
    common.record(NAME, quick=args.quick, sizes={"lines": len(entries), "copies": len(copies)},
                  figures=figures, details=details, started=started)
    return 0


if __name__ == "__main__":
    sys.exit(main())

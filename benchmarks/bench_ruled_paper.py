"""Ruled paper and form boxes: whether real handwriting reads the same with the rules of lined paper, or a form's boxes, drawn in.

People write on lined and squared paper. Each image of ``../shared/real-handwriting`` (or
``--images DIR``) is read as it is, then with rules drawn across it, in memory (nothing is
written): a rule the writing rests on, a sloped one crossing its bottom (a photo turned a
little), a thin light one under it, a page of rules (one above, one under, one through its lower
part), a margin rule down its left side, and squared paper. Each copy
counts when it is read exactly as the image without rules was, by the package as it is and by
the same package with the taking out of rules switched off (``handwritten.rules.remove``), in
the same run. The same for a form's printed boxes: each single character in a box around it,
each line of one row in a comb field (one box, divided midway between its characters), on a
page a little larger (``handwritten.boxes.remove``). The model is model_2 trained with its
defaults on the default offline sample, or ``--model FILE``.

    python benchmarks/bench_ruled_paper.py [--quick] [--model FILE] [--images DIR]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

import bench_real_handwriting as real
import common

NAME = "ruled_paper"
RULE = (70, 90, 170)  # a blue rule, as printed on notebook paper
FAINT = (165, 175, 215)
STYLES = ("resting", "sloped", "faint", "page", "margin", "squared")
BOX = (40, 40, 40)  # a form's printed boxes


def _extra(parser) -> None:
    parser.add_argument("--images", type=Path, default=real.IMAGES,
                        help="folder with labels.json and the images it names (default: %(default)s)")
    parser.add_argument("--model", default=None, metavar="FILE",
                        help="score this model file instead of training model_2 on the sample (default: %(default)s)")


def _ink_box(recognizer, path: Path, line: bool) -> list[int]:
    """The writing's box [x0, y0, x1, y1] in the image's pixels, as the package finds it."""
    from PIL import Image

    from handwritten import images
    from handwritten.marks import union

    if line:
        return union([c["box"] for c in recognizer.read_line(str(path), top=1)["characters"]])
    _, found = images.preprocess(str(path), details=True)
    ys, xs = np.nonzero(found["chosen"])
    with Image.open(path) as im:
        scale = im.size[0] / found["chosen"].shape[1]  # a large image is worked on halved
    return [int(xs.min() * scale), int(ys.min() * scale), int((xs.max() + 1) * scale), int((ys.max() + 1) * scale)]


def _on_white(path: Path):
    """The image at ``path`` as RGB, anything transparent in it on white paper."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGBA")
    page = Image.new("RGBA", im.size, (255, 255, 255, 255))
    page.alpha_composite(im)
    return page.convert("RGB")


def ruled(path: Path, box: list[int], style: str):
    """The image at ``path`` with rules of ``style`` drawn across it, as an RGB PIL image."""
    from PIL import ImageDraw

    page = _on_white(path)
    draw = ImageDraw.Draw(page)
    w = page.size[0]
    height = box[3] - box[1]
    width = max(1, round(0.03 * height))
    bottom, top = box[3] - 1, box[1]
    if style == "resting":
        rules = [(bottom, bottom, width, RULE)]
    elif style == "sloped":  # about 1.5 degrees across the picture
        rise = 0.026 * w
        rules = [(bottom + rise / 2, bottom - rise / 2, width, RULE)]
    elif style == "faint":
        rules = [(bottom + width + 1, bottom + width + 1, max(1, width // 2), FAINT)]
    elif style == "page":
        rules = [(top - 0.15 * height, top - 0.15 * height, width, RULE), (bottom, bottom, width, RULE),
                 (bottom - 0.3 * height, bottom - 0.3 * height, width, RULE)]
    else:
        rules = []
    for y0, y1, pen, colour in rules:
        draw.line([(0, y0), (w, y1)], fill=colour, width=pen)
    h = page.size[1]
    if style == "margin":  # a margin rule between the picture's left edge and the writing
        draw.line([(box[0] // 2, 0), (box[0] // 2, h)], fill=(200, 60, 60), width=width)
    if style == "squared":  # squared paper: the writing spans about two squares
        step = max(4.0, 0.6 * height)
        pen = max(1, width // 2)
        for y in np.arange(bottom % step, h, step):
            draw.line([(0, y), (w, y)], fill=RULE, width=pen)
        for x in np.arange(box[0] % step, w, step):
            draw.line([(x, 0), (x, h)], fill=RULE, width=pen)
    return page


def boxed(path: Path, marks: list[list[int]]):
    """The image at ``path`` on a page larger by a margin of its paper's colour, its characters
    (``marks``, one row, left to right) in a form's printed boxes: a box around one character,
    a comb field around several, its bars midway between them. An RGB PIL image."""
    from PIL import Image, ImageDraw

    flat = _on_white(path)
    pixels = np.asarray(flat)
    paper = tuple(int(v) for v in np.median(np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]), axis=0))
    x0, y0, x1, y1 = (min(m[0] for m in marks), min(m[1] for m in marks), max(m[2] for m in marks),
                      max(m[3] for m in marks))
    height = y1 - y0
    pad, pen = max(4, round(0.25 * height)), max(1, round(0.03 * height))
    margin = pad + pen + 8
    page = Image.new("RGB", (flat.size[0] + 2 * margin, flat.size[1] + 2 * margin), paper)
    page.paste(flat, (margin, margin))
    left, right = x0 - pad, x1 + pad
    if len(marks) == 1:  # a form's box is about as wide as it is high
        extra = max(0, 0.8 * (height + 2 * pad) - (right - left)) / 2
        left, right = left - extra, right + extra
    top, bottom = y0 - pad + margin, y1 + pad + margin
    draw = ImageDraw.Draw(page)
    draw.rectangle([left + margin, top, right + margin, bottom], outline=BOX, width=pen)
    for a, b in zip(marks, marks[1:]):
        x = (a[2] + b[0]) / 2 + margin
        draw.line([(x, top), (x, bottom)], fill=BOX, width=pen)
    return page


def _boxed_copies(recognizer, entries: dict[str, dict]) -> dict[str, list]:
    """Per image, the image as it is and its copy in boxes (lines of one row only)."""
    copies = {}
    for name, entry in sorted(entries.items()):
        if len(entry["label"]) > 1:
            found = recognizer.read_line(str(entry["file"]), top=1)["characters"]
            if not found or any(c["row"] for c in found):
                continue
            marks = [c["box"] for c in found]
        else:
            marks = [_ink_box(recognizer, entry["file"], False)]
        copies[name] = [str(entry["file"]), boxed(entry["file"], marks)]
    return copies


def _copies(recognizer, entries: dict[str, dict]) -> dict[str, list]:
    """Per image, the image as it is and its copies with each style of rules, drawn once around
    the writing as the package (rules taken out) finds it, so both ways read the same copies."""
    copies = {}
    for name, entry in sorted(entries.items()):
        box = _ink_box(recognizer, entry["file"], len(entry["label"]) > 1)
        copies[name] = [str(entry["file"]), *(ruled(entry["file"], box, style) for style in STYLES)]
    return copies


def _reads(recognizer, entries: dict[str, dict], copies: dict[str, list], styles=STYLES) -> dict[str, dict]:
    """Per image, what is read as it is and with each style of rules (or boxes)."""
    out = {}
    for name, sources in copies.items():
        entry = entries[name]
        line = len(entry["label"]) > 1
        read = (lambda source: recognizer.read_line(source, top=1, name=name)["text"]) if line else (
            lambda source: recognizer.predict([source], top=1, names=[name])[0].get("character") or "")
        plain, *styled = (read(source) for source in sources)
        out[name] = {"line": line, "label": entry["label"], "case_sensitive": entry["case_sensitive"],
                     "plain": plain, **dict(zip(styles, styled))}
    return out


def _kept_as_ink(module):
    """A context in which the package keeps rules (``handwritten.rules``) or boxes
    (``handwritten.boxes``) as ink, as it did before it took them out."""
    from unittest import mock

    return mock.patch.object(module, "remove", lambda ink, mask, labels, comps: (ink, mask, labels, comps))


def _counts(reads: dict[str, dict], line: bool, styles=STYLES) -> dict:
    rows = [r for r in reads.values() if r["line"] == line]
    copies = [(r, style) for r in rows for style in styles]
    same = sum(r[style] == r["plain"] for r, style in copies)
    right = sum(real._same(r[style], r["label"], r["case_sensitive"]) for r, style in copies)
    by_style = {style: sum(r[style] == r["plain"] for r in rows) for style in styles}
    return {"images": len(rows), "copies": len(copies), "same": same, "right": right,
            "plain_right": sum(real._same(r["plain"], r["label"], r["case_sensitive"]) for r in rows),
            "same_by_style": by_style}


def _box_figures(recognizer, entries: dict[str, dict], details: dict) -> list[dict]:
    """The rows of the copies in a form's boxes, read with the boxes taken out and kept as ink;
    what they count, and the lines' readings, go into ``details``."""
    from handwritten import boxes

    copies = _boxed_copies(recognizer, entries)
    taken_out = _reads(recognizer, entries, copies, styles=("boxes",))
    with _kept_as_ink(boxes):
        kept = _reads(recognizer, entries, copies, styles=("boxes",))
    figures = []
    for line, what in ((False, "single characters"), (True, "lines")):
        ours, before = _counts(taken_out, line, ("boxes",)), _counts(kept, line, ("boxes",))
        details[f"boxed_{what.replace(' ', '_')}"] = {"boxes_taken_out": ours, "boxes_kept": before}
        figures.append(common.figure(
            f"Form boxes: copies of real {what} read as without the boxes", ours["same"], f"of {ours['copies']}",
            note=(f"{'a comb field around each line of one row' if line else 'a box around each'}; with the boxes "
                  f"kept as ink {before['same']} of {before['copies']}; read right {ours['right']} "
                  f"(kept: {before['right']})")))
    details["boxed_line_reads"] = {name: {"taken_out": taken_out[name], "kept": kept[name]}
                                   for name in taken_out if taken_out[name]["line"]}
    return figures


def main() -> int:
    args = common.parse_args(__doc__.splitlines()[0], _extra)
    started = time.perf_counter()
    entries = real._labels(args.images)
    if args.quick:  # every fifth single character and every line
        singles = sorted(n for n, e in entries.items() if len(e["label"]) == 1)
        entries = {n: e for n, e in entries.items() if len(e["label"]) > 1 or n in singles[::5]}
    details = {"images": str(args.images), "styles": list(STYLES)}
    model = real.model_to_score(args.model, "ruled-paper", details)
    from handwritten import rules
    from handwritten.predict import Recognizer

    recognizer = Recognizer(model)
    copies = _copies(recognizer, entries)
    taken_out = _reads(recognizer, entries, copies)
    with _kept_as_ink(rules):
        kept = _reads(recognizer, entries, copies)
    figures = []
    for line, what in ((False, "single characters"), (True, "lines")):
        ours, before = _counts(taken_out, line), _counts(kept, line)
        details[what.replace(" ", "_")] = {"rules_taken_out": ours, "rules_kept": before}
        figures.append(common.figure(
            f"Ruled paper: copies of real {what} read as without the rules", ours["same"], f"of {ours['copies']}",
            note=(f"{len(STYLES)} styles of rules on {ours['images']} images; with the rules kept as ink "
                  f"{before['same']} of {before['copies']}; read right {ours['right']} (kept: {before['right']}), "
                  f"without rules {ours['plain_right']} of {ours['images']}")))
        print(f"{what}: {ours['same']}/{ours['copies']} read as without the rules "
              f"(rules kept as ink: {before['same']}/{before['copies']})", file=sys.stderr, flush=True)
    figures += _box_figures(recognizer, entries, details)
    # The lines' readings; the single characters only as counts, which point at no single image.
    details["line_reads"] = {name: {"taken_out": taken_out[name], "kept": kept[name]}
                             for name in taken_out if taken_out[name]["line"]}
    common.record(NAME, quick=args.quick, sizes={"images": len(entries), "copies": len(entries) * len(STYLES)},
                  figures=figures, details=details, started=started)
    return 0


if __name__ == "__main__":
    sys.exit(main())

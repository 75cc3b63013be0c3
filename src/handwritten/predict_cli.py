"""``handwritten predict`` on the command line: the answers for each image, or each line, as text or JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from handwritten import calibration, paths
from handwritten.errors import HandwrittenError
from handwritten.folder_data import EXTENSIONS
from handwritten.predict import Recognizer

# Images read and printed at a time: the answers of a folder of thousands come as they are read,
# and what is held at once stays small.
CHUNK = 256


def _images(arguments: list[str]) -> list[str]:
    """Each IMAGE as given, a folder standing for the image files directly in it, by name (not hidden ones)."""
    out = []
    for argument in arguments:
        folder = Path(argument)
        if not folder.is_dir():
            out.append(argument)
            continue
        try:
            found = sorted(str(p) for p in folder.iterdir()
                           if p.suffix.lower() in EXTENSIONS and not p.name.startswith(".") and p.is_file())
        except OSError as exc:  # a folder that may not be listed
            raise HandwrittenError(f"{argument}: cannot list the folder ({exc.strerror or exc})") from None
        if not found:
            raise HandwrittenError(f"{argument}: a folder with no image files in it ({' '.join(sorted(EXTENSIONS))})")
        out += found
    return out


def _public(result: dict) -> dict:
    """A result as JSON can carry it: without the arrays the model saw."""
    out = {k: v for k, v in result.items() if k != "input"}
    if "characters" in out:
        out["characters"] = [_public(c) for c in out["characters"]]
    return out


def _show(result: dict) -> str:
    """One line per image: the answer and its alternatives; '?' and the best candidates when unsure."""
    if result["character"] is None:
        return f"not a character ({result['reason']})"
    if result["unsure"]:
        return "? " + " or ".join(f"{c} {p:.0%}" for c, p in result["top"][:3])
    alternatives = ", ".join(f"{c} {p:.1%}" for c, p in result["top"][1:])
    return f"{result['character']} ({result['probability']:.1%})" + (f"  then {alternatives}" if alternatives else "")


def _text(result: dict) -> str:
    """A result as the command prints it: a line's rows and one line per character, or an image's answer."""
    if "text" not in result:
        return f"{result['image']}: {_show(result)}"
    path = result["image"]
    if "reason" in result:
        out = [f"{path}: no characters ({result['reason']})"]
    else:
        rows = result["text"].split("\n")  # an image of several lines: one row of text each
        out = [f"{path}: " + ("\n" + " " * (len(path) + 2)).join(rows)]
    for c in result["characters"]:
        out.append(f"  {c['character']} {c['probability']:6.1%}  box {c['box']}" + ("  unsure" if c["unsure"] else ""))
    for mark in result.get("ignored", []):
        out.append(f"  -  left out  box {mark['box']}  {mark['reason']}")
    return "\n".join(out)


def _results(recognizer: Recognizer, images: list[str], args):
    """Each image's result (or ``image`` and ``error``), in order, as it is read."""
    if args.line:
        for path in images:
            try:
                yield recognizer.read_line(path, top=args.top or 3, name=path, charset=args.charset,
                                           context=args.context)
            except HandwrittenError as exc:
                yield {"image": path, "error": str(exc)}
        return
    for start in range(0, len(images), CHUNK):
        chunk = images[start:start + CHUNK]
        yield from recognizer.predict(chunk, top=args.top or 5, names=chunk, charset=args.charset)


def run_predict(args) -> int:
    if args.top is not None and args.top < 1:
        raise HandwrittenError(f"--top must be at least 1, got {args.top}")
    recognizer = Recognizer(args.model, min_confidence=args.min_confidence)
    recognizer.classes(args.charset)  # a bad charset is one error, not one per image
    failed = 0
    for result in _results(recognizer, _images(args.images), args):
        failed += "error" in result
        if args.json:
            print(json.dumps(_public(result)), flush=True)
        elif "error" in result:
            print(f"handwritten predict: error: {result['error']}", file=sys.stderr)
        else:
            print(_text(result), flush=True)
    return 1 if failed else 0


def register(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="recognise the character in each image (or a line of characters with --line)",
        description="Recognise handwritten characters in your own images: PNG, JPEG, GIF, BMP, TIFF, WebP or PPM, "
        "any size, dark ink on light paper or light on dark. An image with no character in it (blank, a "
        "scribble, a shape ...) is answered 'not a character', which is not a failure. Exit status 1 if any image "
        "could not be read.",
    )
    p.add_argument("model", type=paths.argument, help="model file (.keras, .h5 or .onnx)")
    p.add_argument("images", nargs="+", metavar="IMAGE", type=paths.argument,
                   help="image files; a folder stands for the image files in it (hidden ones left out)")
    p.add_argument("--top", type=int, default=None,
                   help="how many alternatives to show (default: %(default)s, meaning 5, or 3 with --line)")
    p.add_argument("--json", action="store_true", help="print one JSON object per image (default: %(default)s)")
    p.add_argument("--min-confidence", type=float, default=None, metavar="P",
                   help="mark answers whose calibrated probability is below P as unsure (default: %(default)s, "
                        f"meaning the model's own, else {calibration.MIN_CONFIDENCE})")
    p.add_argument("--line", action="store_true",
                   help="each image is a line of separate characters; read them left to right (default: %(default)s)")
    p.add_argument("--charset", default=None, metavar="SET",
                   help="consider only these characters: digits, upper, lower, letters, alnum, or the characters "
                   "themselves, e.g. 0123456789ABCDEF (default: %(default)s, every class of the model)")
    p.add_argument("--no-context", dest="context", action="store_false",
                   help="with --line, read each character alone, without the line's heights and neighbours "
                   "(default: use them)")
    p.set_defaults(run=run_predict)

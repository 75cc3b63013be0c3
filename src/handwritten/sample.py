"""``handwritten sample``: an offline synthetic stand-in for EMNIST, in EMNIST's byclass file layout.

EMNIST cannot be fetched everywhere, and tests and the demo need data that trains in seconds.
This module draws all 62 characters from fonts the dependencies already bring - the Hershey
stroke fonts of ``hershey-fonts`` and the DejaVu outline fonts matplotlib ships - with a random
pen width, slant, rotation, scale, shift and elastic distortion, and then frames each drawing
the way EMNIST was made from the NIST scans (Cohen et al. 2017, "EMNIST: an extension of
MNIST to handwritten letters"): gaussian blur, crop to the ink, centre in a square, pad 2 px,
bicubic resize to 28x28, stretch intensities to 0..255.

It is NOT EMNIST: a marker file in the folder says so, the loader reports it, and no accuracy
measured on it is an EMNIST result. Its value is that the whole pipeline (train, evaluate,
predict, export) can run anywhere, deterministically for a seed.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

import numpy as np

from handwritten.emnist import IMAGE_SIZE, SPLITS, SYNTHETIC_MARKER
from handwritten.errors import DataError
from handwritten.idx import write_idx
from handwritten.limits import check_number
from handwritten.paths import folder_problem

MAPPING = SPLITS["byclass"].mapping  # class k is the character MAPPING[k]

# Stroke fonts: plain, serif, italic and handwriting-like script faces.
HERSHEY_FACES = ("futural", "futuram", "rowmans", "rowmand", "timesr", "timesi", "timesrb",
                 "scripts", "scriptc", "cursive")
# Outline fonts matplotlib ships: three families in several weights and obliques.
TTF_FACES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
             "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf",
             "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf")

CANVAS = 64  # drawing resolution; a cap height of ~29 px leaves room for rotation and distortion
HERSHEY_SCALE = 1.4  # canvas pixels per Hershey unit: capitals span 21 units, so ~29 px
TTF_SIZE = 40  # DejaVu capitals are 0.73 em, so ~29 px like the Hershey faces
# 10,000 a class is about EMNIST byclass's size (490 MB of images); far more would only exhaust memory.
MAX_PER_CLASS = 10_000
GRID = 4  # the elastic distortion moves the corners of a GRID x GRID mesh over the canvas


# ---------------------------------------------------------------- drawing one character

@functools.lru_cache(maxsize=None)
def _hershey_face(face: str) -> dict[str, tuple]:
    """Every character's pen strokes in canvas pixels, glyph box centred, for one face.

    The font size is the same for all characters, so 'o' stays smaller than 'O' and a pen of
    the same width looks bolder on it after framing, as it does in EMNIST. Loading a face
    unpacks an archive, hence the cache.
    """
    from HersheyFonts import HersheyFonts

    font = HersheyFonts()
    font.load_default_font(face)
    glyphs = {}
    for ch in MAPPING:
        strokes = [np.asarray(s, dtype=np.float64) for s in font.strokes_for_text(ch)]
        points = np.concatenate(strokes)
        centre = (points.min(axis=0) + points.max(axis=0)) / 2
        glyphs[ch] = tuple(tuple(map(tuple, (s - centre) * HERSHEY_SCALE + CANVAS / 2)) for s in strokes)
    return glyphs


@functools.lru_cache(maxsize=None)
def _ttf_font(face: str):
    import matplotlib
    from PIL import ImageFont

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / face
    return ImageFont.truetype(str(path), TTF_SIZE)


def _draw_glyph(ch: str, rng: np.random.Generator, hershey_share: float):
    """Draw ``ch`` upright and clean (white on black, mode 'L') with a random font and pen."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (CANVAS, CANVAS), 0)
    draw = ImageDraw.Draw(image)
    if rng.random() < hershey_share:
        strokes = _hershey_face(HERSHEY_FACES[rng.integers(len(HERSHEY_FACES))])[ch]
        width = int(rng.integers(2, 5))
        r = (width - 1) / 2
        for stroke in strokes:
            draw.line(stroke, fill=255, width=width, joint="curve")
            # Round pen tips, as a ball-point leaves them.
            for x, y in (stroke[0], stroke[-1]):
                draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    else:
        font = _ttf_font(TTF_FACES[rng.integers(len(TTF_FACES))])
        x0, y0, x1, y1 = font.getbbox(ch, anchor="ls")
        origin = (CANVAS / 2 - (x0 + x1) / 2, CANVAS / 2 - (y0 + y1) / 2)
        # stroke_width thickens the outline, standing in for a broader pen.
        draw.text(origin, ch, fill=255, font=font, anchor="ls", stroke_width=int(rng.integers(0, 2)), stroke_fill=255)
    return image


def _distort(image, rng: np.random.Generator, *, rotation: float, slant: float, scale: float,
             shift: float, elastic: float):
    """One resampling for the whole random geometry: affine (rotate, slant, scale, shift) plus an elastic mesh.

    PIL's MESH transform maps each output cell to a quadrilateral of the input; moving the
    mesh corners at random bends strokes smoothly, like Simard et al.'s elastic distortions,
    at a fraction of the cost of a per-pixel displacement field.
    """
    from PIL import Image

    angle = np.deg2rad(rng.uniform(-rotation, rotation))
    shear = rng.uniform(-slant, slant)
    sx = rng.uniform(1 - scale, 1 + scale)
    sy = sx * rng.uniform(0.9, 1.1)  # a little change of aspect ratio as well
    cos, sin = np.cos(angle), np.sin(angle)
    forward = np.array([[cos, -sin], [sin, cos]]) @ np.array([[1, shear], [0, 1]]) @ np.diag([sx, sy])
    inverse = np.linalg.inv(forward)
    centre = CANVAS / 2 + rng.uniform(-shift, shift, size=2)

    ticks = np.linspace(0, CANVAS, GRID + 1)
    out = np.stack(np.meshgrid(ticks, ticks, indexing="xy"), axis=-1)  # (row, col, xy)
    src = (out - centre) @ inverse.T + CANVAS / 2 + rng.normal(0, elastic, size=out.shape)
    mesh = []
    for i in range(GRID):
        for j in range(GRID):
            box = (int(ticks[j]), int(ticks[i]), int(ticks[j + 1]), int(ticks[i + 1]))
            # Corners in PIL's order: upper left, lower left, lower right, upper right.
            quad = (*src[i, j], *src[i + 1, j], *src[i + 1, j + 1], *src[i, j + 1])
            mesh.append((box, tuple(float(v) for v in quad)))
    return image.transform((CANVAS, CANVAS), Image.Transform.MESH, mesh, resample=Image.Resampling.BILINEAR)


def frame_like_emnist(image: np.ndarray, *, sigma: float = 1.0, pad: int = 2) -> np.ndarray:
    """Turn a drawing (bright ink on dark, any size) into a 28x28 uint8 image the way EMNIST was made.

    Cohen et al. 2017, section II-A: gaussian blur (sigma 1), crop to the region around the
    character, centre it in a square keeping the aspect ratio, pad 2 px, downsample to 28x28
    with bicubic interpolation, scale the intensities to 0..255.

    Raises:
        DataError: the image holds no ink.
    """
    from PIL import Image
    from scipy.ndimage import gaussian_filter

    blurred = gaussian_filter(np.asarray(image, dtype=np.float32), sigma)
    peak = float(blurred.max())
    if peak <= 0:
        raise DataError("the image holds no ink to frame (it is blank)")
    # The blur's faint tails would otherwise count as ink and shrink the character.
    rows = np.flatnonzero((blurred > 0.05 * peak).any(axis=1))
    cols = np.flatnonzero((blurred > 0.05 * peak).any(axis=0))
    crop = blurred[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = crop.shape
    side = max(h, w)
    square = np.zeros((side + 2 * pad, side + 2 * pad), dtype=np.float32)
    top, left = pad + (side - h) // 2, pad + (side - w) // 2
    square[top:top + h, left:left + w] = crop
    small = np.asarray(Image.fromarray(square, mode="F").resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC))
    small = np.clip(small, 0, None)  # bicubic overshoots below zero next to strokes
    return np.round(small * (255 / small.max())).astype(np.uint8)


def render_character(ch: str, rng: np.random.Generator, *, rotation: float = 12.0, slant: float = 0.3,
                     scale: float = 0.15, shift: float = 4.0, elastic: float = 1.6,
                     hershey_share: float = 0.6) -> np.ndarray:
    """Draw one character with a random font, pen and distortion, framed like EMNIST.

    Args:
        ch: one of 0-9, A-Z, a-z.
        rng: the source of randomness; the same state gives the same image.
        rotation: largest rotation, degrees either way.
        slant: largest shear (horizontal shift per unit of height) either way.
        scale: largest relative change of size (changes pen width relative to the glyph).
        shift: largest shift in canvas pixels (of 64) before framing.
        elastic: standard deviation, in canvas pixels, of the elastic mesh's corner moves.
        hershey_share: the fraction of images drawn with stroke fonts rather than outline fonts.

    Returns:
        A uint8 array (28, 28), upright, bright ink on black, like EMNIST after un-transposing.
    """
    if ch not in MAPPING:
        raise DataError(f"cannot render {ch!r}: only 0-9, A-Z and a-z are drawn")
    glyph = _draw_glyph(ch, rng, hershey_share)
    warped = _distort(glyph, rng, rotation=rotation, slant=slant, scale=scale, shift=shift, elastic=elastic)
    return frame_like_emnist(np.asarray(warped))


# ---------------------------------------------------------------- the sample folder

def _render_part(per_class: int, rng: np.random.Generator, progress) -> tuple[np.ndarray, np.ndarray]:
    labels = np.repeat(np.arange(len(MAPPING), dtype=np.uint8), per_class)
    # Shuffled, so that the first part of a file (a partial load) still holds every class.
    labels = labels[rng.permutation(len(labels))]
    images = np.empty((len(labels), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    for i, label in enumerate(labels):
        images[i] = render_character(MAPPING[label], rng)
        progress.update(1)
    return images, labels


def write_sample(folder: str | os.PathLike, *, train_per_class: int = 400, test_per_class: int = 60,
                 seed: int = 0, progress: bool = False) -> Path:
    """Write the synthetic sample as ``emnist-byclass-*`` files (images stored transposed, like EMNIST).

    Args:
        folder: where to write; created if needed. A folder holding real EMNIST byclass files is refused.
        train_per_class: training images per character (62 characters).
        test_per_class: test images per character.
        seed: the random seed; the same seed and counts give byte-identical files.
        progress: show a progress bar on stderr.

    Returns:
        The folder.
    """
    from tqdm import tqdm

    folder = Path(folder)
    if train_per_class < 1 or test_per_class < 1:
        raise DataError(f"need at least one image per class, got train_per_class={train_per_class}, "
                        f"test_per_class={test_per_class}")
    check_number("--train-per-class", train_per_class, 1, MAX_PER_CLASS, integer=True)
    check_number("--test-per-class", test_per_class, 1, MAX_PER_CLASS, integer=True)
    check_number("--seed", seed, 0, 2**32 - 1, integer=True)
    if os.path.lexists(folder) and (problem := folder_problem(folder)):
        raise DataError(f"{folder}: {problem}")
    if any(folder.glob("emnist-byclass-*")) and not (folder / SYNTHETIC_MARKER).exists():
        raise DataError(f"{folder}: holds EMNIST byclass files that are not a synthetic sample; "
                        "choose another --dir rather than overwrite them")
    folder.mkdir(parents=True, exist_ok=True)
    # The marker goes first: an interrupted run must never leave files that pass for real EMNIST.
    (folder / SYNTHETIC_MARKER).write_text(
        "SYNTHETIC SAMPLE - NOT EMNIST.\n"
        "These files were drawn by 'handwritten sample' from Hershey stroke fonts and DejaVu outline\n"
        "fonts with random distortions, in EMNIST's byclass file layout (62 classes, images stored\n"
        "transposed). They are for demos and tests; an accuracy measured on them is not an EMNIST result.\n"
        f"seed: {seed}\ntrain images per class: {train_per_class}\ntest images per class: {test_per_class}\n"
    )
    rng = np.random.default_rng(seed)
    total = len(MAPPING) * (train_per_class + test_per_class)
    with tqdm(total=total, disable=not progress, unit="img", desc="drawing") as bar:
        parts = {"train": _render_part(train_per_class, rng, bar), "test": _render_part(test_per_class, rng, bar)}
    for part, (images, labels) in parts.items():
        # EMNIST stores images transposed; so does the sample, and the loader turns both upright.
        write_idx(folder / f"emnist-byclass-{part}-images-idx3-ubyte.gz", images.transpose(0, 2, 1))
        write_idx(folder / f"emnist-byclass-{part}-labels-idx1-ubyte.gz", labels)
    (folder / "emnist-byclass-mapping.txt").write_text("".join(f"{k} {ord(c)}\n" for k, c in enumerate(MAPPING)))
    return folder


def run_sample(args) -> int:
    start = time.perf_counter()
    folder = write_sample(args.dir, train_per_class=args.train_per_class, test_per_class=args.test_per_class,
                          seed=args.seed, progress=True)
    classes = len(MAPPING)
    print(f"wrote a SYNTHETIC sample (not EMNIST) to {folder}: {classes} classes, "
          f"{classes * args.train_per_class} train + {classes * args.test_per_class} test images, "
          f"seed {args.seed}, in {time.perf_counter() - start:.1f} s")
    print("it is for demos and tests; accuracies on it are not EMNIST results")
    return 0


def register(sub) -> None:
    p = sub.add_parser("sample", help="write an offline synthetic sample (not EMNIST) in EMNIST's byclass layout",
                       description="Draw 0-9, A-Z, a-z from stroke and outline fonts with random distortions and "
                                   "write them as emnist-byclass-* files. It is synthetic, not EMNIST.")
    p.add_argument("--dir", default="emnist",
                   help="folder to write; ./emnist is where the other commands look first (default: %(default)s)")
    p.add_argument("--train-per-class", type=int, default=400, metavar="N",
                   help="training images per class (default: %(default)s)")
    p.add_argument("--test-per-class", type=int, default=60, metavar="N",
                   help="test images per class (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="random seed; same seed, same files (default: %(default)s)")
    p.set_defaults(run=run_sample)

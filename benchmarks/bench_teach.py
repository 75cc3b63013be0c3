"""Teaching a new hand: a model given 5 samples a character of a writer it never saw, and what it forgot.

A model_2 is trained on the offline synthetic sample. The new writer is made here, under the
benchmark's own control: Pillow's built-in Aileron face (not among the sample's fonts),
leaning back hard, narrow, drawn with a thick marker, grey on off-white paper with scan
noise, written as PNG files in a folder, 5 per character for training (``train/``) and more
held out (``test/``). ``handwritten finetune --data WRITER`` continues training on them with a
replay of the sample, and its report gives accuracy on the held-out writing and on the
sample's test set before and after.

    python benchmarks/bench_teach.py [--quick]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

import common

NAME = "teach"
GAIN_TARGET = 0.20  # accuracy points gained on the new writer's held-out samples
FORGET_TARGET = 0.01  # accuracy points lost at most on the original test set
TRAIN_PER_CLASS = 5  # what the writer gives
SLANT = -0.55  # horizontal shift per unit of height: leaning back, beyond the sample's +-0.3
NARROW = 0.7  # width kept
MARKER = 4  # outline width in px of a 64 px face: a felt marker


def write_writer(folder: Path, mapping: str, per_part: dict[str, int], seed: int) -> None:
    """The new writer's samples as PNG files in ``folder/<part>/<character>/``."""
    from PIL import Image, ImageDraw, ImageFont

    from handwritten.folder_data import class_name

    rng = np.random.default_rng(seed)
    font = ImageFont.load_default(size=64)
    for part, count in per_part.items():
        for ch in mapping:
            sub = folder / part / class_name(ch)
            sub.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                # One writer: the same lean, width and marker each time, with a hand's small wobble.
                canvas = Image.new("L", (160, 160), 0)
                ImageDraw.Draw(canvas).text((80, 80), ch, fill=255, font=font, anchor="mm",
                                            stroke_width=MARKER + int(rng.integers(0, 2)), stroke_fill=255)
                slant = SLANT + rng.normal(0, 0.04)
                narrow = NARROW * rng.uniform(0.95, 1.05)
                # The affine maps output to input pixels about the centre.
                a, b = 1 / narrow, slant
                canvas = canvas.transform((160, 160), Image.Transform.AFFINE,
                                          (a, b, 80 - a * 80 - b * 80, 0, 1, 0), resample=Image.Resampling.BILINEAR)
                canvas = canvas.rotate(float(rng.normal(0, 2)), resample=Image.Resampling.BILINEAR)
                ink = np.asarray(canvas, dtype=np.float32) / 255
                paper = rng.uniform(225, 245) + rng.normal(0, 4, ink.shape)
                pixels = paper * (1 - ink) + rng.uniform(30, 70) * ink
                Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(sub / f"{i:02d}.png")


def main() -> int:
    args = common.parse_args(__doc__.splitlines()[0], lambda p: (
        p.add_argument("--epochs", type=int, default=None, help="finetune --epochs (default: %(default)s, its own)"),
        p.add_argument("--learning-rate", type=float, default=None,
                       help="finetune --learning-rate (default: %(default)s, its own)")))
    started = time.perf_counter()
    train_per_class, test_per_class, epochs = (60, 10, 3) if args.quick else (300, 40, 8)
    held_per_class = 5 if args.quick else 10
    # The sample and the base model trained on it are kept between runs, as long as the sample's code is the same.
    root = common.DATA / "teach" / f"{train_per_class}-{test_per_class}-{common.sample_code_key()}"
    sample = root / "sample"
    if not (sample / "SYNTHETIC-SAMPLE.txt").exists():
        common.handwritten("sample", "--dir", sample, "--train-per-class", train_per_class,
                           "--test-per-class", test_per_class, "--seed", 0)
    base = root / f"base-{epochs}-{common.training_code_key()}.keras"  # trained again when training changes
    if not base.exists():
        common.handwritten("train", "--model", "model_2", "--data", sample, "--epochs", epochs, "--seed", 0,
                           "--out", base, "--json")
    from handwritten.emnist import SPLITS

    writer = root / "writer"
    if not writer.exists():
        write_writer(writer, SPLITS["byclass"].mapping, {"train": TRAIN_PER_CLASS, "test": held_per_class}, seed=1)
    out = root / f"taught-{time.strftime('%Y%m%dT%H%M%S')}.keras"
    extra = [a for k, v in (("--epochs", args.epochs), ("--learning-rate", args.learning_rate)) if v is not None
             for a in (k, v)]
    tuned = time.perf_counter()
    proc = common.handwritten("finetune", "--model", base, "--data", writer, "--out", out, "--seed", 0, "--json",
                              *extra)
    seconds = time.perf_counter() - tuned
    summary = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
    out.unlink(missing_ok=True)
    report = summary["teach"]
    before, after = report["before"], report["after"]
    gain = after["samples"] - before["samples"]
    change = after["original"] - before["original"]
    figures = [
        common.figure("Teach: new writer's held-out samples, accuracy before -> after", f"{before['samples']:.1%} -> "
                      f"{after['samples']:.1%}", "", note=f"{report['samples_held_out']} held-out images, "
                      f"{TRAIN_PER_CLASS} samples a character to learn from"),
        common.figure("Teach: gain on the new writer", round(100 * gain, 1), "points",
                      target=f">= +{100 * GAIN_TARGET:g} points",
                      met=gain >= GAIN_TARGET, note=f"finetune took {seconds:.0f} s"),
        common.figure("Teach: change on the original test set (forgetting)", round(100 * change, 1), "points",
                      target=f">= -{100 * FORGET_TARGET:g} point", met=change >= -FORGET_TARGET,
                      note=f"{before['original']:.1%} -> {after['original']:.1%} on {report['original_test_images']} "
                           f"images; replay of {report['replay_images']} images"),
    ]
    sizes = {"sample_train_per_class": train_per_class, "sample_test_per_class": test_per_class,
             "base_epochs": epochs, "writer_train_per_class": TRAIN_PER_CLASS, "writer_test_per_class": held_per_class}
    details = {
        "data": "the offline synthetic sample (base model); a writer drawn by this script (Aileron, leaning back, "
                "narrow, thick marker, on noisy paper), as PNG files",
        "teach": report, "finetune_config": summary["config"], "finetune_history": summary.get("epochs"),
        "finetune_seconds": round(seconds, 1),
    }
    common.record(NAME, quick=args.quick, sizes=sizes, figures=figures, details=details, started=started)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training throughput: samples per second per epoch, ours against the original script's way.

For each of model_1 and model_2, the same architecture is trained on the same data for the
same number of epochs, two ways, each in a fresh process, interleaved (ours, original, ours,
original, three rounds for model_2 and two for model_1; the figure is the round with the median
ratio, the lower one of two):

- ours: ``handwritten.train.create_model`` with the model's default settings but without
  augmentation, the work the original way does (uint8 data fed through the input pipeline,
  scaled per batch, batch normalisation trained with TensorFlow's fused kernel:
  ``handwritten/fused.py``);
- the original script's way: the whole set as a float32 array in memory, one-hot labels,
  ``model.fit(batch_size=64)``, the same optimizer, Keras's layers as they come.

The figure is the last epoch's training samples per second, first batch to last (the first
epoch pays for building the graph), with both test accuracies beside it. Both models augment by
default, which the original way does not: a second figure gives what that costs, model_2 trained
our way with its augmentation in each round too, against our way without. Ours holds out its
validation part (5%) and checks it each epoch, outside the
timed span; the original way trains on the whole part and validates nothing.

    python benchmarks/bench_training.py [--quick]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import common

NAME = "training"
TARGET = 2.0  # model_2: ours at least this many times the original way's samples per second


def _ours(name: str, data: str, part: float, epochs: int, out: Path, augment: bool) -> dict:
    from handwritten.modelio import read_meta
    from handwritten.train import create_model

    result = create_model(name, str(out), part, data=data, epochs=epochs, seed=0, augment=augment, verbose=0,
                          overwrite=True)  # each round trains to the same file
    per_epoch = [float(e["samples_per_second"]) for e in read_meta(out)["history"]]
    return {
        "samples_per_second": per_epoch[-1],
        "per_epoch": per_epoch,
        "test_accuracy": float(result["test_accuracy"]),
        "epochs": len(per_epoch),
        "train_samples": result["train_samples"],
        "batch_size": result["config"]["batch_size"],
        "augment": result["config"]["augment"],
    }


def _optimizer(name: str, steps: int):
    """The optimizer ``handwritten.train`` gives ``name`` (one-cycle: warm-up, then cosine decay)."""
    import keras

    from handwritten.train import DEFAULTS, GENERIC

    s = DEFAULTS.get(name, GENERIC)
    rate, warm = s["learning_rate"], int(steps * s["warmup"])
    schedule = keras.optimizers.schedules.CosineDecay(
        rate * (0.1 if warm else 1.0), max(1, steps - warm), alpha=0.01,
        warmup_target=rate if warm else None, warmup_steps=warm)
    if s["weight_decay"]:
        return keras.optimizers.AdamW(schedule, weight_decay=s["weight_decay"])
    return keras.optimizers.Adam(schedule)


def _original(name: str, data: str, part: float, epochs: int) -> dict:
    import original
    from handwritten.models import MODELS

    x_train, y_train, x_test, y_test, classes = original.load_float(data, part)
    model = MODELS[name](classes, x_train.shape[1:])
    steps = epochs * -(-len(x_train) // 64)
    model.compile(optimizer=_optimizer(name, steps), loss="categorical_crossentropy", metrics=["accuracy"])
    clock = original.fit(model, x_train, y_train, epochs=epochs, batch_size=64)
    accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)[1]
    per_epoch = [e["samples_per_second"] for e in clock["epochs"]]
    return {
        "samples_per_second": per_epoch[-1],
        "per_epoch": per_epoch,
        "test_accuracy": float(accuracy),
        "epochs": len(per_epoch),
        "train_samples": len(x_train),
        "batch_size": 64,
        "augment": False,
    }


def work(argv: list[str]) -> dict:
    """One training in this process: ``WAY MODEL DATA PART EPOCHS OUT``."""
    way, name, data, part, epochs, out = argv[0], argv[1], argv[2], float(argv[3]), int(argv[4]), Path(argv[5])
    if way in ("ours", "ours-augmented"):
        return _ours(name, data, part, epochs, out, augment=way == "ours-augmented")
    return _original(name, data, part, epochs)


def main() -> int:
    args = common.parse_args(__doc__.splitlines()[0])
    if args.worker is not None:
        sys.path.insert(0, str(common.HERE))
        common.worker_output(work(args.worker))
        return 0
    started = time.perf_counter()
    quick = args.quick
    data, which = common.training_data()
    epochs = 2
    # model_1 costs about five times model_2 per image; a smaller part keeps the run in budget.
    parts = {"model_2": 0.05, "model_1": 0.02} if quick else {"model_2": 0.2, "model_1": 0.07}
    # ours, original, ours, original, ...: a slow spell of the machine hits both. model_2's rounds
    # are short, so it gets a third, and its figure is the median round; model_1's the lower of two.
    rounds = {"model_2": 1, "model_1": 1} if quick else {"model_2": 3, "model_1": 2}
    out = common.DATA / "training"
    out.mkdir(parents=True, exist_ok=True)
    runs = {}
    for name in ("model_2", "model_1"):
        for round_ in range(rounds[name]):
            for way in ("ours", "original", *(("ours-augmented",) if name == "model_2" else ())):
                run = common.run_worker(Path(__file__), [way, name, data, parts[name], epochs, out / f"{name}.keras"],
                                        env={"HANDWRITTEN_CACHE": str(common.CACHE)})
                runs.setdefault(f"{name}-{way}", []).append(run)
                print(f"training: {name} {way}, round {round_ + 1}: {run['samples_per_second']:.0f} samples/s",
                      file=sys.stderr, flush=True)
    figures = []
    for name in ("model_2", "model_1"):
        # Each round's ratio, and the round with the median ratio for the figures beside it.
        ratios = [o["samples_per_second"] / g["samples_per_second"]
                  for o, g in zip(runs[f"{name}-ours"], runs[f"{name}-original"])]
        middle = sorted(range(rounds[name]), key=ratios.__getitem__)[(rounds[name] - 1) // 2]
        ours, orig, ratio = runs[f"{name}-ours"][middle], runs[f"{name}-original"][middle], ratios[middle]
        note = (f"ours {ours['samples_per_second']:,.0f} samples/s (batch {ours['batch_size']}"
                f"{', with augmentation' if ours['augment'] else ''}), test accuracy "
                f"{ours['test_accuracy']:.3f}; original way {orig['samples_per_second']:,.0f} samples/s (batch 64), "
                f"test accuracy {orig['test_accuracy']:.3f}; {epochs} epochs on {parts[name]:.0%} of the training set"
                + (f"; ratio per round {', '.join(f'{r:.2f}' for r in ratios)}" if rounds[name] > 1 else ""))
        if name == "model_2":
            figures.append(common.figure("Training, model_2: samples/s, ours / original script's way", ratio, "x",
                                         target=f">= {TARGET}", met=ratio >= TARGET, note=note))
            plain, augmented = runs["model_2-ours"][middle], runs["model_2-ours-augmented"][middle]
            figures.append(common.figure(
                "Training, model_2: samples/s with its default augmentation / without",
                augmented["samples_per_second"] / plain["samples_per_second"], "x",
                note=f"with {augmented['samples_per_second']:,.0f} samples/s, test accuracy "
                     f"{augmented['test_accuracy']:.3f}; without {plain['samples_per_second']:,.0f} samples/s"))
        else:
            figures.append(common.figure("Training, model_1: samples/s, ours / original script's way", ratio, "x",
                                         note=note))
    sizes = {"epochs": epochs, "parts_of_training_set": parts, "rounds": rounds}
    details = {"data": which, "figure": "last epoch's samples per second", "runs": runs}
    common.record(NAME, quick=quick, sizes=sizes, figures=figures, details=details, started=started)
    return 0


if __name__ == "__main__":
    sys.exit(main())

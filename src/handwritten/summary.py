"""After training: batch-normalisation statistics measured again as inference sees the images, and
the summary of a run (returned by ``create_model``/``next_train``, printed by ``handwritten train``).
"""

from __future__ import annotations

# Batch normalisation's moving statistics trail the weights while those change fast, so a short
# run tests far below its training accuracy with them, and they were gathered on augmented images
# with dropout on. After training they are measured again on up to this many training images, as
# inference sees them.
CALIBRATION_IMAGES = 10240


def recalibrate(model, batches) -> int:
    """Set every batch-normalisation layer's moving statistics to the average of its batch statistics.

    ``batches`` yields (images, labels) as evaluation sees them; dropout is off meanwhile, so the
    statistics are those inference meets. Weights are unchanged. Returns the images used.
    """
    import keras

    def nested(layer):
        for inner in getattr(layer, "layers", []):
            yield inner
            yield from nested(inner)

    layers = list(nested(model))
    norms = [(layer, layer.momentum) for layer in layers
             if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable]
    drops = [(layer, layer.rate) for layer in layers if isinstance(layer, keras.layers.Dropout)]
    if not norms:
        return 0
    seen = 0
    try:
        for layer, _ in drops:
            layer.rate = 0.0
        for i, (images, _) in enumerate(batches):
            for layer, _ in norms:
                layer.momentum = i / (i + 1)  # a running mean over the batches so far
            model(images, training=True)
            seen += int(images.shape[0])
    finally:
        for layer, momentum in norms:
            layer.momentum = momentum
        for layer, rate in drops:
            layer.rate = rate
    return seen


def make_summary(settings, dataset, meta: dict, *, initial_epoch: int, stopped: bool, best_epoch: int,
                 saved: str | None, seconds: float, total_seconds: float, replicas: int, global_batch: int,
                 chief: bool, dry_run: bool, orientation: str) -> dict:
    """The run's summary from its settings, data set and final metadata (history and test results inside)."""
    import dataclasses

    history = meta["history"]
    ran = history[initial_epoch:]
    last = history[-1] if history else {}
    return {
        "model": settings.model_name, "model_path": saved, "base_model": settings.base_model,
        "data": str(dataset.folder), "split": dataset.split.name, "classes": dataset.classes,
        "synthetic": dataset.synthetic, "params": meta["params"], "orientation": orientation,
        "train_samples": meta["train_samples"], "validation_samples": meta["validation_samples"],
        "test_samples": meta["test_samples"], "epochs": len(history), "epochs_run": len(ran),
        "resumed_from": initial_epoch, "stopped_early": stopped, "best_epoch": best_epoch,
        "seconds": round(seconds, 2), "total_seconds": round(total_seconds, 2),
        "samples_per_second": round(sum(e["samples_per_second"] for e in ran) / len(ran), 1) if ran else 0.0,
        "train_accuracy": last.get("accuracy"), "val_accuracy": last.get("val_accuracy"),
        "test_accuracy": meta["test_accuracy"], "test_loss": meta["test_loss"], "temperature": meta["temperature"],
        "replicas": replicas, "global_batch_size": global_batch, "distribute": settings.distribute,
        "chief": chief, "dry_run": dry_run,
        "seed": settings.seed, "config": dataclasses.asdict(settings),
    }


def print_summary(s: dict) -> None:
    data = f"{s['data']} (split {s['split']}, {s['classes']} classes)"
    if s["synthetic"]:
        data += " - the synthetic offline sample, not EMNIST"
    resumed = f", resumed after epoch {s['resumed_from']}" if s["resumed_from"] else ""
    stopped = f", stopped early, best epoch {s['best_epoch']}" if s["stopped_early"] else ""
    lines = [
        f"data: {data}",
        f"  {s['train_samples']} training, {s['validation_samples']} validation, {s['test_samples']} test images",
        f"model: {s['model']} ({s['params']:,} parameters)"
        + (f", fine-tuned from {s['base_model']}" if s["base_model"] else ""),
        f"epochs: {s['epochs']}{resumed}{stopped}; this run {s['epochs_run']} epoch{'' if s['epochs_run'] == 1 else 's'} in {s['seconds']:.1f} s "
        f"({s['samples_per_second']:.0f} samples/s)" + (f", {s['replicas']} replicas" if s["replicas"] > 1 else ""),
        "final train accuracy: " + (f"{s['train_accuracy']:.4f}" if s["train_accuracy"] is not None else "-")
        + ", validation accuracy: " + (f"{s['val_accuracy']:.4f}" if s["val_accuracy"] is not None else "-"),
        f"test accuracy: {s['test_accuracy']:.4f}",
    ]
    if s["model_path"]:
        lines.append(f"model saved to {s['model_path']} (history inside, in its metadata)")
    else:
        lines.append("dry run: nothing saved")
    print("\n".join(lines), flush=True)

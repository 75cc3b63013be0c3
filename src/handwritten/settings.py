"""The settings of a training run: the ``Settings`` dataclass saved with checkpoints and models,
each model's defaults, and how options given to ``create_model``/``next_train`` become settings.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

from handwritten import limits
from handwritten.errors import HandwrittenError


@dataclass
class Settings:
    """Everything a training run depends on; saved in checkpoints and in the model file."""

    model_name: str  # a key of models.MODELS, or the loaded model's name when fine-tuning
    epochs: int  # the most epochs; early stopping may end sooner
    batch_size: int  # per replica; the global batch is this times the number of replicas
    learning_rate: float  # the peak of the one-cycle schedule (warm-up, then cosine decay)
    warmup: float  # fraction of all steps spent warming up; short warm-ups keep BN stable at high rates
    weight_decay: float  # AdamW's decoupled decay; a little regularises the larger model
    validation: float  # fraction of the training part held out to report and early-stop on
    patience: int  # epochs without a better validation accuracy before stopping; 0 never stops
    augment: bool  # small random rotation, shift, scale and shear of half of each batch; never flips (b/d, p/q)
    part: float  # fraction of the training data used (the original script's part_for_samples)
    seed: int  # one seed for the subset, the validation split, the shuffling and the weights
    data: str | None  # the data folder as given (None: ./emnist, then the cache)
    split: str | None  # EMNIST split (None: byclass when present, else inferred)
    distribute: str | None  # None, "mirrored" or "multiworker"
    base_model: str | None = None  # fine-tuning: the model file training started from


# Per-model defaults, chosen on Fashion-MNIST on 2 CPU cores (see benchmarks/fashion_accuracy.py).
DEFAULTS = {
    # model_2: four quick epochs at a high rate; aimed at >= 90% on Fashion-MNIST in under a minute.
    # Augmented, as model_1: trained on the offline sample, it reads more of people's real
    # handwriting (benchmarks/bench_real_handwriting.py) for about a tenth more time; on
    # Fashion-MNIST, where slant means nothing, it tests a little lower but still above 90%.
    "model_2": dict(epochs=4, batch_size=128, learning_rate=3e-3, warmup=0.2, weight_decay=0.0,
                    validation=0.05, patience=0, augment=True),
    # model_1: eleven epochs at a larger batch and a higher rate; aimed at >= 93.5% on Fashion-MNIST
    # within 12 minutes on two CPU cores. Early stopping ends a longer run (--epochs) when it stalls.
    "model_1": dict(epochs=11, batch_size=256, learning_rate=2.8e-3, warmup=0.1, weight_decay=5e-3,
                    validation=0.05, patience=6, augment=True),
}
# A model without its own entry (and any fine-tuning run) starts from these.
GENERIC = dict(epochs=5, batch_size=128, learning_rate=2e-3, warmup=0.1, weight_decay=0.0,
               validation=0.05, patience=0, augment=False)
# Fine-tuning continues from trained weights: fewer epochs, a gentler rate, no warm-up spike.
FINETUNE = dict(epochs=2, learning_rate=5e-4, warmup=0.0)
DRY_RUN_SAMPLES = 256


def parse_part(part) -> float:
    """The fraction of the training data to use: a float in (0, 1], or an int k >= 2 meaning 1/k."""
    if isinstance(part, str):
        text = part.strip()
        try:
            part = int(text)
        except ValueError:
            try:
                part = float(text)
            except ValueError:
                raise HandwrittenError(f"part {text!r}: not a number; give a fraction in (0, 1] "
                                       "or an integer k >= 2 meaning 1/k") from None
    if isinstance(part, bool) or not isinstance(part, (int, float)):
        raise HandwrittenError(f"part {part!r}: must be a fraction in (0, 1] or an integer k >= 2 meaning 1/k")
    if isinstance(part, int):
        if part == 1 or part >= 2:
            return 1.0 / part
        raise HandwrittenError(f"part {part}: an integer part must be k >= 2 (meaning 1/k of the data), or 1")
    if not (0.0 < part <= 1.0) or math.isnan(part):
        raise HandwrittenError(f"part {part}: a fractional part must be in (0, 1]")
    return float(part)


def make_settings(model_name: str, *, finetune: bool = False, **given) -> Settings:
    """Settings from the model's defaults overridden by every option that is not None."""
    values = dict(DEFAULTS.get(model_name, GENERIC))
    if finetune:
        values.update(FINETUNE)
    values.update({k: v for k, v in given.items() if v is not None})
    values.setdefault("data", None)
    values.setdefault("split", None)
    values.setdefault("distribute", None)
    settings = Settings(model_name=model_name, **values)
    limits.check_training(dataclasses.asdict(settings))
    return settings


def check_resume(state: dict, settings: Settings, given: dict, path: Path) -> Settings:
    """The checkpoint's settings; an error if an option given now contradicts them."""
    saved = Settings(**state["settings"])
    wanted = dataclasses.asdict(settings)
    keys = ["model_name", "base_model"] + [k for k, v in given.items() if v is not None]
    for key in keys:
        old, new = getattr(saved, key), wanted[key]
        if key in ("data", "base_model") and old and new:
            old, new = str(Path(old).resolve()), str(Path(new).resolve())
        if old != new:
            raise HandwrittenError(
                f"{path}: checkpoint was made with {key}={getattr(saved, key)!r}, this run asks for "
                f"{key}={wanted[key]!r}; run with the checkpoint's settings to resume, or pass --restart "
                "(resume=False) to start over")
    return saved

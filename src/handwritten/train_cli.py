"""The ``handwritten train`` and ``handwritten finetune`` commands (see ``train.py`` for what they run)."""

from __future__ import annotations

import argparse
import sys

from handwritten import checkpoint as ckpt
from handwritten import paths
from handwritten.errors import HandwrittenError
from handwritten.models import MODELS
from handwritten.settings import DEFAULTS, FINETUNE


def _resume_hint(argv) -> str:
    import shlex

    words = ["handwritten", *argv]
    if "--resume" not in words:
        words.append("--resume")
    return " ".join(shlex.quote(w) for w in words if w != "--restart")


def run_cli(args) -> int:
    import json

    from handwritten.train import create_model, next_train

    options = dict(data=args.data, split=args.split, epochs=args.epochs, batch_size=args.batch_size,
                   learning_rate=args.learning_rate, validation=args.validation, augment=args.augment,
                   seed=args.seed, distribute=args.distribute, dry_run=args.dry_run,
                   resume=True if args.resume else (False if args.restart else None),
                   text=not args.json, resume_hint=_resume_hint(sys.argv[1:]),
                   command=" ".join(["handwritten", *sys.argv[1:]]))
    if args.resume and args.restart:
        raise HandwrittenError("--resume and --restart contradict each other; give one")
    if args.command == "train":
        out = args.out or f"{args.model}.keras"
        summary = create_model(args.model, out, args.part, overwrite=args.overwrite, **options)
    else:
        summary = next_train(args.out, args.model, args.part, overwrite=args.overwrite, replay=args.replay, **options)
    if args.json:
        print(json.dumps(summary), flush=True)
    return 0


def _add_common(p) -> None:
    p.add_argument("--data", default=None, metavar="DIR", type=paths.argument,
                   help="data folder with IDX files, or with sub-folders of images by character (7/, upper-A/, lower-a/ ...) "
                        "(default: ./emnist, then the user cache)")
    p.add_argument("--split", default=None, help="EMNIST split (default: byclass when present, else inferred)")
    p.add_argument("--part", default="1.0", metavar="F",
                   help="fraction of the training data to use, in (0, 1]; an integer k >= 2 means 1/k "
                        "(default: %(default)s)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed for the subset, validation split, shuffling and weights (default: %(default)s)")
    p.add_argument("--distribute", choices=ckpt.STRATEGIES, default=None,
                   help="train on all GPUs of this machine (mirrored) or on several machines configured by "
                        "TF_CONFIG (multiworker) (default: %(default)s, one device)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint beside --out; it must exist (default: %(default)s; "
                        "re-running the same command also resumes when a checkpoint is there)")
    p.add_argument("--restart", action="store_true",
                   help="ignore a checkpoint beside --out and start over (default: %(default)s)")
    p.add_argument("--dry-run", action="store_true",
                   help="one epoch on 256 images, nothing saved, to check the set-up (default: %(default)s)")
    p.add_argument("--json", action="store_true",
                   help="print the summary as one JSON object on stdout (default: %(default)s)")
    p.set_defaults(run=run_cli)


def _defaults_text(key: str, finetune: bool = False) -> str:
    if finetune and key in FINETUNE:
        return f"{FINETUNE[key]}"
    return ", ".join(f"{name}: {values[key]}" for name, values in DEFAULTS.items())


def _add_hyper(p, finetune: bool = False) -> None:
    p.add_argument("--epochs", type=int, default=None,
                   help=f"most epochs to train (default: %(default)s, meaning {_defaults_text('epochs', finetune)})")
    p.add_argument("--batch-size", type=int, default=None,
                   help="batch size per replica (default: %(default)s, meaning "
                        f"{_defaults_text('batch_size', finetune)})")
    p.add_argument("--learning-rate", type=float, default=None,
                   help="peak learning rate of the one-cycle schedule (default: %(default)s, meaning "
                        f"{_defaults_text('learning_rate', finetune)})")
    p.add_argument("--validation", type=float, default=None,
                   help="fraction of the training data held out for validation (default: %(default)s, meaning "
                        f"{_defaults_text('validation', finetune)})")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="random rotation, shift, scale and shear of half of each batch, never flips "
                        f"(default: %(default)s, meaning {_defaults_text('augment', finetune)})")


def register(sub) -> None:
    p = sub.add_parser("train", help="train a new model on EMNIST (or any IDX data) and save it",
                       description="Train model_1 (accurate) or model_2 (fast) and save it with its classes, "
                                   "orientation and history. A checkpoint beside --out is written after each "
                                   "epoch; re-running the same command continues from it.")
    p.add_argument("--model", choices=list(MODELS), default="model_2", help="which network (default: %(default)s)")
    p.add_argument("--out", default=None, metavar="PATH", type=paths.argument,
                   help="model file to write, .h5 or .keras (default: %(default)s, meaning MODEL.keras)")
    p.add_argument("--overwrite", action="store_true",
                   help="allow --out to exist already, and replace it when training ends (default: %(default)s)")
    _add_hyper(p)
    _add_common(p)

    p = sub.add_parser("finetune", help="continue training a saved model and save the result",
                       description="Load a model file (also one saved by the original Keras 2 script), train it "
                                   "further on data with the same classes, and save it to --out.")
    p.add_argument("--model", required=True, metavar="PATH", type=paths.argument, help="the model file to start from (required)")
    p.add_argument("--out", required=True, metavar="PATH", type=paths.argument, help="model file to write, .h5 or .keras (required)")
    p.add_argument("--overwrite", action="store_true",
                   help="allow --out to exist already, even as the --model file itself, and replace it "
                        "(default: %(default)s)")
    p.add_argument("--replay", default=None, metavar="DIR", type=paths.argument,
                   help="with --data a folder of your own samples: the original training data to mix in so "
                        "nothing is forgotten (default: %(default)s, the data folder the model names)")
    _add_hyper(p, finetune=True)
    _add_common(p)

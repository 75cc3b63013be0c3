"""``handwritten inspect``: check a data folder and say what it holds."""

from __future__ import annotations

import json

from handwritten import emnist, paths


def run_inspect(args) -> int:
    dataset = emnist.load(args.dir, args.split)
    info = emnist.summary(dataset)
    if args.json:
        print(json.dumps(info))
        return 0
    print(dataset.describe())
    for part, p in info["parts"].items():
        print(
            f"{part}: {p['count']} images of {p['image_size'][0]}x{p['image_size'][1]}, "
            f"{p['classes']} classes, {p['per_class_min']}-{p['per_class_max']} images per class"
        )
    if dataset.synthetic:
        print("note: this is the synthetic offline sample, not EMNIST")
    print("usable: yes")
    return 0


def register(sub) -> None:
    p = sub.add_parser("inspect", help="check a data folder and print what it holds")
    p.add_argument("dir", type=paths.argument, help="folder with IDX files (EMNIST, MNIST or short names), or with sub-folders of images "
                               "by character (7/, upper-A/, lower-a/ ...)")
    p.add_argument("--split", default=None, help="EMNIST split (default: %(default)s, meaning byclass when present, else inferred from the labels)")
    p.add_argument("--json", action="store_true", help="print one JSON object (default: %(default)s)")
    p.set_defaults(run=run_inspect)

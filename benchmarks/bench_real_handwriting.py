"""Real handwriting: how much of people's own writing a model trained on the offline sample reads.

Generates the default offline sample (``handwritten sample``), trains model_2 and model_1 on it
with their default settings (``handwritten train --model NAME --data DIR``), and scores each on
``../shared/real-handwriting`` (or ``--images DIR``): images of real people's writing from other
projects, described by its ``labels.json``. Single characters are read with
``Recognizer.predict`` and counted right when the character matches the label, ignoring case
where the label says case cannot be told from the shape; lines are read with
``Recognizer.read_line`` (what ``predict --line`` does) and count only when the whole text is
right. The images are for measuring only: nothing is trained or tuned on them.

A model trained on one sample reads a few images more or fewer than one trained on another draw
of the same sample, so model_2 is also trained on the samples of further seeds (``--seeds``), and
the spread of what they read is given beside the default sample's figures.

    python benchmarks/bench_real_handwriting.py [--quick] [--skip-model-1] [--seeds N] [--model FILE ...]
                                                [--images DIR]
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import common

NAME = "real_handwriting"
IMAGES = common.ROOT.parent / "shared" / "real-handwriting"
TARGETS = {"model_2": 0.85, "model_1": 0.90}  # share of single characters read right
LINES_TARGET = 3  # lines read exactly, model_2
KINDS = ("canvas", "scan", "photo")
GROUPS = ("digits", "upper", "lower")


def _extra(parser) -> None:
    parser.add_argument("--images", type=Path, default=IMAGES,
                        help="folder with labels.json and the images it names (default: %(default)s)")
    parser.add_argument("--model", action="append", default=None, metavar="FILE",
                        help="score this model file instead of training on the sample; repeatable "
                             "(default: %(default)s)")
    parser.add_argument("--skip-model-1", action="store_true",
                        help="train and score model_2 only; model_1 takes far longer (default: %(default)s)")
    parser.add_argument("--train-per-class", type=int, default=None, metavar="N",
                        help="sample size to train on (default: the sample command's own default)")
    parser.add_argument("--seeds", type=int, default=3, metavar="N",
                        help="train model_2 on the samples of seeds 0 .. N-1 and give the spread of its "
                             "figures; 1 with --quick (default: %(default)s)")


def _labels(folder: Path) -> dict[str, dict]:
    """labels.json's entries, each with ``file`` set to the image's path; checked before any training."""
    path = folder / "labels.json"
    if not path.is_file():
        raise SystemExit(f"{NAME}: {path} not found; give the folder of real images with --images DIR")
    entries = json.loads(path.read_text())
    for name, entry in entries.items():
        found = [p for p in (folder / "single" / name, folder / "lines" / name, folder / name) if p.is_file()]
        if not found:
            raise SystemExit(f"{NAME}: {name} is listed in {path} but not found under {folder}")
        entry["file"] = found[0]
    return entries


def _group(label: str) -> str:
    return "digits" if label.isdigit() else ("upper" if label.isupper() else "lower")


def _same(read: str, label: str, case_sensitive: bool) -> bool:
    return read == label if case_sensitive else read.lower() == label.lower()


def _share(rows: list[dict]) -> dict:
    right = sum(r["right"] for r in rows)
    return {"right": right, "of": len(rows), "share": right / len(rows) if rows else None}


def score(model_path: Path, entries: dict[str, dict]) -> dict:
    """Singles by kind, by group and overall, and lines, for one model file."""
    from handwritten.errors import HandwrittenError
    from handwritten.predict import Recognizer

    recognizer = Recognizer(model_path)
    singles = {n: e for n, e in entries.items() if len(e["label"]) == 1}
    names = sorted(singles)
    results = recognizer.predict([str(singles[n]["file"]) for n in names], top=1, names=names)
    rows = []
    for name, result in zip(names, results):
        entry = singles[name]
        read = result.get("character") or ""  # None: rejected as no character, or an error
        rows.append({"image": name, "label": entry["label"], "read": read, "kind": entry["kind"],
                     "group": _group(entry["label"]),
                     "right": _same(read, entry["label"], entry["case_sensitive"])})
    lines = []
    for name in sorted(set(entries) - set(singles)):
        entry = entries[name]
        try:
            text = recognizer.read_line(str(entry["file"]), name=name)["text"]
        except HandwrittenError as exc:
            text = f"(error: {exc})"
        # The rows of an image of several lines are read with a line break between them; the
        # label writes the text on one line.
        lines.append({"image": name, "label": entry["label"], "read": text, "kind": entry["kind"],
                      "right": _same(text.replace("\n", " "), entry["label"], entry["case_sensitive"])})
    return {
        "singles": _share(rows),
        "by_kind": {k: _share([r for r in rows if r["kind"] == k]) for k in KINDS},
        "by_group": {g: _share([r for r in rows if r["group"] == g]) for g in GROUPS},
        "lines": _share(lines),
        "line_reads": [{k: r[k] for k in ("image", "label", "read")} for r in lines],
        # Which classes were confused, as counts: a summary that does not point at single images.
        "confusions": _confusions(rows),
    }


def _confusions(rows: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rows:
        if not r["right"]:
            key = f"{r['label']}->{r['read']}"
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def _pct(part: dict) -> str:
    return "-" if part["share"] is None else f"{part['share']:.0%} ({part['right']}/{part['of']})"


def _summary(label: str, s: dict) -> str:
    kinds = ", ".join(f"{k} {_pct(s['by_kind'][k])}" for k in KINDS if s["by_kind"][k]["of"])
    groups = ", ".join(f"{g} {_pct(s['by_group'][g])}" for g in GROUPS if s["by_group"][g]["of"])
    return f"{label}: singles {_pct(s['singles'])}; {kinds}; {groups}; lines {_pct(s['lines'])}"


def _train(model_name: str, data: Path, out: Path, seed: int | None = None) -> dict:
    started = time.perf_counter()
    extra = [] if seed is None else ["--seed", seed]
    common.handwritten("train", "--model", model_name, "--data", data, "--out", out, "--overwrite", "--json", *extra,
                       timeout=3600)
    from handwritten.modelio import read_meta

    meta = read_meta(out)
    return {"seconds": round(time.perf_counter() - started, 1), "epochs": len(meta.get("history") or []),
            "sample_test_accuracy": meta.get("test_accuracy")}


def model_to_score(given: str | None, folder: str, details: dict) -> Path:
    """The ``given`` model file, or model_2 trained with its defaults on the default sample into
    ``folder`` (under the benchmarks' data); ``details`` says which."""
    if given:
        details["model"] = f"the given model {given}"
        return Path(given)
    data, _ = _sample(None)
    model = common.DATA / folder / "model_2.keras"
    model.parent.mkdir(parents=True, exist_ok=True)
    print("training model_2 with its defaults on the sample ...", file=sys.stderr, flush=True)
    details["trained"] = _train("model_2", data, model)
    details["model"] = "model_2 trained with its defaults on the default offline sample"
    return model


def _sample(train_per_class: int | None, seed: int | None = None) -> tuple[Path, dict]:
    """The default sample (or another seed's), drawn again on every run: the code that draws it is what is measured."""
    from handwritten.idx import read_idx

    folder = common.DATA / "real-handwriting" / ("sample" if seed is None else f"sample-{seed}")
    shutil.rmtree(folder, ignore_errors=True)
    extra = [] if train_per_class is None else ["--train-per-class", train_per_class]
    extra += [] if seed is None else ["--seed", seed]
    started = time.perf_counter()
    out = common.handwritten("sample", "--dir", folder, *extra).stdout
    seconds = time.perf_counter() - started
    marker = (folder / "SYNTHETIC-SAMPLE.txt").read_text()
    per_class = next(line for line in marker.splitlines() if line.startswith("train images")).split(":")[1].strip()
    test_per_class = int(next(line for line in marker.splitlines() if line.startswith("test images")).split(":")[1])
    images = sum(len(read_idx(folder / f"emnist-byclass-{part}-labels-idx1-ubyte.gz")) for part in ("train", "test"))
    return folder, {"train_per_class": per_class, "test_per_class": test_per_class, "images": images,
                    "seconds": round(seconds, 1), "images_per_second": round(images / seconds, 1),
                    "says": out.strip()}


def _spread(first: dict, seeds: int, train_per_class: int | None, entries: dict) -> list[dict]:
    """model_2 trained on the samples of seeds 1 .. seeds-1 as well (sample and training seed alike),
    each scored; ``first`` is the default sample's score (seed 0)."""
    rows = [{"seed": 0, "singles": first["singles"], "lines": first["lines"]}]
    for seed in range(1, seeds):
        data, _ = _sample(train_per_class, seed)
        out = common.DATA / "real-handwriting" / f"model_2-seed-{seed}.keras"
        print(f"training model_2 on the sample of seed {seed} ...", file=sys.stderr, flush=True)
        trained = _train("model_2", data, out, seed)
        shutil.rmtree(data, ignore_errors=True)
        s = score(out, entries)
        print(_summary(f"model_2, seed {seed}", s), file=sys.stderr, flush=True)
        rows.append({"seed": seed, "trained": trained, "singles": s["singles"], "lines": s["lines"],
                     "line_reads": s["line_reads"]})
    return rows


def _spread_figures(rows: list[dict]) -> list[dict]:
    shares = [100 * r["singles"]["share"] for r in rows]
    lines = [r["lines"]["right"] for r in rows]
    each = ", ".join(f"seed {r['seed']}: {100 * r['singles']['share']:.1f}%, {r['lines']['right']} lines"
                     for r in rows)
    return [
        common.figure(f"Real handwriting, model_2 on {len(rows)} draws of the sample: single characters "
                      "read right, mean", round(sum(shares) / len(shares), 1), "%",
                      note=f"lowest {min(shares):.1f}%, highest {max(shares):.1f}%; {each}"),
        common.figure(f"Real handwriting, model_2 on {len(rows)} draws of the sample: lines read exactly, mean",
                      round(sum(lines) / len(lines), 2), f"of {rows[0]['lines']['of']}",
                      note=f"fewest {min(lines)}, most {max(lines)}"),
    ]


def main() -> int:
    args = common.parse_args(__doc__.splitlines()[0], _extra)
    started = time.perf_counter()
    entries = _labels(args.images)
    figures, details, sizes = [], {"images": str(args.images)}, {}
    if args.model:
        models = {Path(m).name: (Path(m), None) for m in args.model}
        details["data"] = f"real handwriting in {args.images}; the given model file(s)"
    else:
        data, drawn = _sample(args.train_per_class)
        details["sample"] = drawn
        sizes["sample_images"] = drawn["images"]
        print(f"sample: {drawn['images']} images in {drawn['seconds']} s ({drawn['images_per_second']} images/s)",
              file=sys.stderr, flush=True)
        names = ["model_2"] if (args.skip_model_1 or args.quick) else ["model_2", "model_1"]
        models = {}
        for name in names:
            out = common.DATA / "real-handwriting" / f"{name}.keras"
            print(f"training {name} with its defaults on the sample ...", file=sys.stderr, flush=True)
            models[name] = (out, _train(name, data, out))
        details["data"] = (f"real handwriting in {args.images}; models trained with their defaults on the "
                           f"default offline sample (training images: {drawn['train_per_class']})")
        figures.append(common.figure("Real handwriting: offline sample drawing speed", drawn["images_per_second"],
                                     "images/s", note=f"{drawn['images']} images in {drawn['seconds']} s"))
    scores = {}
    for label, (path, trained) in models.items():
        s = score(path, entries)
        scores[label] = s
        print(_summary(label, s), file=sys.stderr, flush=True)
        details[label] = {"trained": trained, **s}
        target = TARGETS.get(label)
        kinds = ", ".join(f"{k} {_pct(s['by_kind'][k])}" for k in KINDS if s["by_kind"][k]["of"])
        groups = ", ".join(f"{g} {_pct(s['by_group'][g])}" for g in GROUPS if s["by_group"][g]["of"])
        how = f"; trained {trained['epochs']} epochs in {trained['seconds']:.0f} s" if trained else ""
        figures.append(common.figure(
            f"Real handwriting, {label}: single characters read right", round(100 * s["singles"]["share"], 1), "%",
            target=f">= {target:.0%}" if target else None,
            met=(s["singles"]["share"] >= target) if target else None,
            note=f"{s['singles']['right']}/{s['singles']['of']}; {kinds}; {groups}{how}"))
        figures.append(common.figure(
            f"Real handwriting, {label}: lines read exactly", s["lines"]["right"], f"of {s['lines']['of']}",
            target=f">= {LINES_TARGET}" if label == "model_2" else None,
            met=(s["lines"]["right"] >= LINES_TARGET) if label == "model_2" else None,
            note="; ".join(f"{r['label']!r} read {r['read']!r}" for r in s["line_reads"])))
    seeds = 1 if args.quick else args.seeds
    if not args.model and seeds > 1 and "model_2" in scores:
        spread = _spread(scores["model_2"], seeds, args.train_per_class, entries)
        details["model_2_seeds"] = spread
        figures += _spread_figures(spread)
        sizes["model_2_seeds"] = seeds
    sizes["single_images"] = scores and next(iter(scores.values()))["singles"]["of"]
    sizes["line_images"] = scores and next(iter(scores.values()))["lines"]["of"]
    common.record(NAME, quick=args.quick, sizes=sizes, figures=figures, details=details, started=started)
    return 0


if __name__ == "__main__":
    sys.exit(main())

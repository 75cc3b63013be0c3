"""Write the README's "Measured figures" block from the newest results in ``benchmarks/results/``.

The block sits between ``<!-- figures:start -->`` and ``<!-- figures:end -->``; everything in
it comes from result lines that benchmark scripts of this repository wrote, with the date and
the machine, so no figure in the README is typed in by hand. ``run_all.py`` and
``fashion_accuracy.py`` call it after each run.

    python benchmarks/readme_figures.py [--readme README.md]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import common

START, END = "<!-- figures:start -->", "<!-- figures:end -->"


def results(name: str) -> list[dict]:
    """Every line of ``results/<name>.jsonl``, oldest first."""
    path = common.RESULTS / f"{name}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def newest(name: str, keep=lambda r: True) -> dict | None:
    """The last line of ``results/<name>.jsonl`` that ``keep`` accepts."""
    rows = [r for r in results(name) if keep(r)]
    return rows[-1] if rows else None


def newest_full(name: str) -> dict | None:
    """The newest full result of ``name``; its newest quick one when no full run was made."""
    return newest(name, lambda r: not r.get("quick")) or newest(name)


def _machine(m: dict) -> str:
    load = m.get("load_average")
    where = f"{m['cores']} CPU cores ({m['cpu']})" + (f", {m['gpu']}" if m.get("gpu") else "")
    return where + (f", load average {load[0]:g} at the end" if load else "")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def fashion_lines() -> list[str]:
    lines = []
    for model in ("model_2", "model_1"):
        r = newest("fashion_accuracy", lambda r, m=model: r["model"] == m and "--seed" not in r["command"]
                   and "--epochs" not in r["command"])
        if r is None:
            lines.append(f"- Fashion-MNIST, `{model}` with its default settings: not measured yet "
                         f"(`python benchmarks/fashion_accuracy.py {model}`).")
            continue
        target = r["target"]
        wanted = f">= {target['test_accuracy']:.1%}" + (f" in < {target['seconds']:.0f} s" if "seconds" in target else "")
        lines.append(
            f"- Fashion-MNIST, `{model}` with its default settings (`{r['command']}`): "
            f"**{r['test_accuracy']:.2%}** test accuracy after {r['epochs']} epochs, "
            f"{_duration(r['seconds'])} of training ({_duration(r['wall_seconds'])} for the whole command, "
            f"{r['samples_per_second']:,.0f} samples/s); target {wanted}: {'met' if r['met'] else 'missed'}. "
            f"Measured {r['date'][:10]} on {_machine(r['machine'])}; "
            f"`python benchmarks/fashion_accuracy.py {model}` reruns it."
            + (f" Note: {r['note']}." if r.get("note") else "")
            + _other_seeds(r) + _given_longer(r))
    return lines


def _given_longer(default: dict) -> str:
    """The newest result of the same model with more epochs than its default, measured after ``default``."""
    longer = newest("fashion_accuracy", lambda r: r["model"] == default["model"] and "--epochs" in r["command"]
                    and "--seed" not in r["command"] and r["config"]["epochs"] > default["config"]["epochs"]
                    and r["date"] >= default["date"])
    if longer is None:
        return ""
    target = longer["target"]
    wanted = f"; target >= {target['test_accuracy']:.1%}: {'met' if longer['met'] else 'missed'}" if target else ""
    return (f" Given longer (`{longer['command']}`): {longer['test_accuracy']:.2%} after {longer['epochs']} epochs, "
            f"{_duration(longer['seconds'])} of training{wanted}.")


def _other_seeds(default: dict) -> str:
    """Results of the same settings with other seeds, measured after ``default``: the spread."""
    same = lambda r: {**r["config"], "seed": None} == {**default["config"], "seed": None}  # noqa: E731
    others = [r for r in results("fashion_accuracy")
              if "--seed" in r["command"] and same(r) and r["date"] >= default["date"]]
    if not others:
        return ""
    return " Same settings, other seeds: " + ", ".join(
        f"seed {r['config']['seed']} {r['test_accuracy']:.2%} ({_duration(r['seconds'])})" for r in others) + "."


def server_lines() -> list[str]:
    r = newest_full("server")
    if r is None:
        return ["- Server load test: not measured yet (`make bench`)."]
    load = r["details"]["load"]
    mode = " (quick mode: fewer requests)" if r.get("quick") else ""
    return [
        f"- Server, `POST /api/predict` from a second process on 127.0.0.1 (`benchmarks/server_load.py`, "
        f"the load tool `make test` also runs), {load['concurrency']} concurrent clients{mode}: "
        f"**{load['requests_per_s']:,.0f} requests/s**, latency p50 {load['latency_ms']['p50']:.0f} ms, "
        f"p99 {load['latency_ms']['p99']:.0f} ms, {load['completed']} of {load['requested']} answered, "
        f"{load['errors']} failed. Measured {r['date'][:10]} on {_machine(r['machine'])}."
    ]


def rejection_lines() -> list[str]:
    r = newest_full("rejection")
    if r is None:
        return ["- Not a character: not measured yet (`python benchmarks/bench_rejection.py`)."]
    d = r["details"]
    neg, real = d["negatives"], d.get("real")
    mode = " (quick mode)" if r.get("quick") else ""
    line = (f"- Not a character{mode}, {d['model']}: **{neg['rejected'] / neg['images']:.0%}** of {neg['images']} "
            "generated non-characters (blank pages, specks, noise, scribbles, shapes, crossed-out marks, several "
            "characters, textures) answered `character: null` (target >= 90%)")
    if real:
        line += (f"; **{real['share_rejected']:.0%}** of {real['images']} real handwritten characters rejected "
                 f"(target <= 5%), {real['unsure']} marked unsure")
    lines = d.get("as_lines")
    if lines:
        nothing = lines["no_characters_by_kind"]
        others, per_kind = [k for k in lines["kinds"] if k != "several"], lines["per_kind"]
        line += (f". Given as lines, {sum(nothing.get(k, 0) for k in others)} of {per_kind * len(others)} of them "
                 f"(all but the several characters) read no characters ("
                 + ", ".join(f"{k} {nothing.get(k, 0)}/{per_kind}" for k in others)
                 + f"), and {lines['real_marks_left_out']} of the {lines['real_marks']} marks of the real lines "
                 "were left out")
    line += (f". Calibration error on the sample's test part {d['calibration_error_uncalibrated']:.4f} before "
             f"temperature scaling, **{d['calibration_error']:.4f}** after (temperature {d['temperature']:.2f}). "
             f"Measured {r['date'][:10]} on {_machine(r['machine'])}; `python benchmarks/bench_rejection.py` reruns it.")
    return [line]
def _shares(parts: dict) -> str:
    return ", ".join(f"{name} {part['share']:.0%}" for name, part in parts.items() if part["of"])


def real_handwriting_lines() -> list[str]:
    r = newest("real_handwriting", lambda r: "sample" in r["details"])
    if r is None:
        return ["- Real handwriting: not measured yet (`python benchmarks/bench_real_handwriting.py`)."]
    rows = [f"`{model}` **{s['singles']['share']:.1%}** of the single characters ({_shares(s['by_kind'])}; "
            f"{_shares(s['by_group'])}), {s['lines']['right']} of {s['lines']['of']} lines exactly"
            for model, s in ((m, r["details"][m]) for m in ("model_2", "model_1") if m in r["details"])]
    spread = r["details"].get("model_2_seeds")
    if spread:
        shares = [row["singles"]["share"] for row in spread]
        lines = [row["lines"]["right"] for row in spread]
        rows.append(f"`model_2` trained on {len(spread)} draws of the sample (seeds 0-{len(spread) - 1}) read "
                    f"{min(shares):.1%} to {max(shares):.1%} of the single characters (mean "
                    f"{sum(shares) / len(shares):.1%}) and "
                    + (f"{min(lines)} to {max(lines)} lines" if min(lines) < max(lines) else f"{min(lines)} lines each"))
    return ["- Real handwriting (people's single characters and lines from other projects, "
            f"`../shared/real-handwriting`), read by models trained with their defaults on the default offline "
            f"sample: " + "; ".join(rows) + f". Measured {r['date'][:10]} on {_machine(r['machine'])}; "
            f"`python benchmarks/bench_real_handwriting.py` reruns it."]


def ruled_paper_lines() -> list[str]:
    r = newest("ruled_paper", lambda r: "trained" in r["details"])
    if r is None:
        return ["- Ruled paper: not measured yet (`python benchmarks/bench_ruled_paper.py`)."]
    parts = []
    for what in ("single_characters", "lines"):
        ours, kept = r["details"][what]["rules_taken_out"], r["details"][what]["rules_kept"]
        parts.append(f"**{ours['same']} of {ours['copies']}** copies of the {ours['images']} real "
                     f"{what.replace('_', ' ')} read as without the rules ({kept['same']} with the rules kept as ink)")
    boxed = []
    for what in ("single_characters", "lines"):
        if f"boxed_{what}" in r["details"]:
            ours, kept = r["details"][f"boxed_{what}"]["boxes_taken_out"], r["details"][f"boxed_{what}"]["boxes_kept"]
            boxed.append(f"**{ours['same']} of {ours['copies']}** copies of real {what.replace('_', ' ')} in a form's "
                         f"boxes read as without them ({kept['same']} with the boxes kept as ink)")
    return [f"- Ruled paper (`benchmarks/bench_ruled_paper.py`): the real handwriting with the rules of lined and squared paper "
            f"drawn in ({', '.join(r['details']['styles'])}), read by `model_2` trained on the default sample: "
            + "; ".join(parts) + (". Written in a form's boxes (a box around each single character, a comb field "
                                  "around each line of one row): " + "; ".join(boxed) if boxed else "")
            + f". Measured {r['date'][:10]} on {_machine(r['machine'])}."]


def touching_lines() -> list[str]:
    r = newest("touching", lambda r: "trained" in r["details"])
    if r is None:
        return ["- Touching characters: not measured yet (`python benchmarks/bench_touching.py`)."]
    ours, before = r["details"]["split"], r["details"]["not_split"]
    parts = [f"{style}: **{ours[style]['distance']}** characters wrong ({before[style]['distance']} without the "
             f"splitting), exactly read {ours[style]['exact']} of {ours[style]['lines']} lines "
             f"({before[style]['exact']} without)" for style in ours]
    lines = len(r["details"]["lines"])
    return [f"- Touching characters (`benchmarks/bench_touching.py`): the {lines} real lines of one word rebuilt with "
            f"their characters moved together, read by `model_2` trained on the default sample, edit distance to "
            f"the labels in all: " + "; ".join(parts) + f"; the lines as they are read the same with and without "
            f"the splitting in {r['details']['lines_as_they_are_unchanged']} of {lines}. "
            f"Measured {r['date'][:10]} on {_machine(r['machine'])}."]


def teach_lines() -> list[str]:
    r = newest_full("teach")
    if r is None:
        return ["- Teaching a new hand: not measured yet (`python benchmarks/bench_teach.py`)."]
    t, sizes = r["details"]["teach"], r["sizes"]
    before, after = t["before"], t["after"]
    gain, change = after["samples"] - before["samples"], after["original"] - before["original"]
    mode = " (quick mode: a smaller sample and base model)" if r.get("quick") else ""
    return [
        f"- Teaching a new hand (`benchmarks/bench_teach.py`{mode}): a model_2 trained on the offline sample, "
        f"given {sizes['writer_train_per_class']} samples a character of a writer it never saw, reads that "
        f"writer's {t['samples_held_out']} held-out samples **{before['samples']:.1%} -> {after['samples']:.1%}** "
        f"({100 * gain:+.1f} points; target +20) and its own test set {before['original']:.1%} -> "
        f"{after['original']:.1%} ({100 * change:+.1f} points; target at most 1 lost), with "
        f"`handwritten finetune --data WRITER` in {_duration(r['details']['finetune_seconds'])}. "
        f"Measured {r['date'][:10]} on {_machine(r['machine'])}."
    ]


def speed_lines() -> list[str]:
    r = newest_full("speed")
    if r is None:
        return ["- Speed (preparing images, server against a bare endpoint): not measured yet (`make bench`)."]
    d, ours, bare = r["details"], r["details"]["servers"]["handwritten"], r["details"]["servers"]["bare"]
    mode = " (quick mode)" if r.get("quick") else ""
    return [
        f"- Speed{mode} (`benchmarks/bench_speed.py`): preparing a 280x280 canvas PNG takes **{d['canvas']['cpu_ms']:.2f} ms**, "
        f"a 12-megapixel photo **{d['photo']['cpu_ms']:.0f} ms** (median CPU time on one core); the server answers "
        f"**{ours['requests_per_s']:,.0f} requests/s** where a bare endpoint (Pillow decode, 28x28 resize, the same ONNX "
        f"model) answers {bare['requests_per_s']:,.0f}: **{ours['requests_per_s'] / bare['requests_per_s']:.2f}x**, "
        f"latency p50 {ours['p50_ms']:.0f} ms, p99 {ours['p99_ms']:.0f} ms (8 clients, interleaved, one run)"
        + (f"; decoding the canvas PNG alone with Pillow takes {d['canvas_decode_only']['cpu_ms']:.1f} ms" if "canvas_decode_only" in d else "")
        + f". Measured {r['date'][:10]} on {_machine(r['machine'])}, load average {d['load_average_before'][0]:.1f} before."
    ]


def bench_length_lines() -> list[str]:
    """How long ``make bench`` takes: the sum of each benchmark's newest full run, as each recorded it."""
    from run_all import BENCHMARKS

    runs = {name: newest(name, lambda r: not r.get("quick")) for name in BENCHMARKS}
    done = {name: r for name, r in runs.items() if r}
    if not done:
        return []
    missing = sorted(set(BENCHMARKS) - set(done))
    longest = max(done, key=lambda name: done[name]["seconds"])
    return [f"- `make bench`: its {len(done)} benchmarks took **{sum(r['seconds'] for r in done.values()) / 60:.0f} "
            f"minutes** in all, each timed by its own newest full run (the longest, {longest}, "
            f"{_duration(done[longest]['seconds'])})" + (f"; not run yet: {', '.join(missing)}" if missing else "")
            + "."]


def block() -> str:
    lines = [START, "", "Fashion-MNIST is a real data set but not EMNIST; these are not EMNIST results.", ""]
    lines += (fashion_lines() + server_lines() + speed_lines() + real_handwriting_lines() + ruled_paper_lines()
              + touching_lines() + teach_lines() + rejection_lines() + bench_length_lines())
    lines += ["", END]
    return "\n".join(lines)


def update(readme: Path) -> None:
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{readme}: no {START} ... {END} block to fill")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    readme.write_text(head + block() + tail)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=common.ROOT / "README.md",
                        help="the README to update (default: %(default)s)")
    args = parser.parse_args()
    update(args.readme)
    print(f"updated the measured figures in {args.readme}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

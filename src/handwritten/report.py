"""The ``evaluate --report`` page: PNG plots and one self-contained HTML file that opens offline.

Every plot is written as a PNG beside the page and embedded in it as a base64 data URI, so
``report.html`` alone can be mailed or opened without the folder and without a network.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np

from handwritten.errors import HandwrittenError

GRID_COLUMNS = 10  # misclassified images per row
GRID_MAX = 60  # misclassified images shown, most confident mistakes first


def _history(meta: dict) -> dict[str, list[float]]:
    """The per-epoch history as {metric: [values]}, whether stored as a dict of lists or a list of epochs."""
    history = meta.get("history") or {}
    if isinstance(history, list):
        keys = sorted({k for epoch in history for k in epoch})
        history = {k: [epoch.get(k) for epoch in history] for k in keys}
    return {k: v for k, v in history.items() if isinstance(v, list) and v and all(isinstance(a, (int, float)) for a in v)}


def plot_curves(meta: dict, path: Path) -> None:
    """Loss and accuracy per epoch, training and validation, from the model's stored history."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    history = _history(meta)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for key, style in ((metric, "-o"), (f"val_{metric}", "--s")):
            if key in history:
                ax.plot(range(1, len(history[key]) + 1), history[key], style, label=key, markersize=4)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
        else:
            ax.text(0.5, 0.5, "no training history stored in the model", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(confusion: np.ndarray, mapping: str, path: Path) -> None:
    """Row-normalised confusion matrix: where each true class's images went."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import PowerNorm

    rows = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    n = len(mapping)
    side = max(5.0, 0.16 * n + 2)
    fig, ax = plt.subplots(figsize=(side, side))
    im = ax.imshow(rows, cmap="viridis", norm=PowerNorm(0.4, vmin=0, vmax=1))
    ticks = np.arange(n)
    ax.set_xticks(ticks, list(mapping), fontsize=7 if n > 20 else 10)
    ax.set_yticks(ticks, list(mapping), fontsize=7 if n > 20 else 10)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix (share of each true class)")
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_per_class(per_class: dict, path: Path) -> None:
    """Accuracy of each class as bars, the overall accuracy as a line."""
    import matplotlib.pyplot as plt

    chars = list(per_class)
    acc = [per_class[c]["accuracy"] if per_class[c]["accuracy"] is not None else 0.0 for c in chars]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.18 * len(chars) + 2), 3.5))
    ax.bar(range(len(chars)), acc, color=["tab:red" if a < 0.5 else "tab:blue" for a in acc])
    ax.set_xticks(range(len(chars)), chars, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title("per-class accuracy")
    total = sum(v["correct"] for v in per_class.values()) / max(sum(v["count"] for v in per_class.values()), 1)
    ax.axhline(total, color="black", lw=1, ls="--", label=f"overall {total:.1%}")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_misclassified(x: np.ndarray, y: np.ndarray, probs: np.ndarray, mapping: str, path: Path) -> int:
    """A grid of misclassified test images, the most confident mistakes first; returns how many are shown."""
    import matplotlib.pyplot as plt

    predicted = probs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y)
    wrong = wrong[np.argsort(-probs[wrong, predicted[wrong]])][:GRID_MAX]
    cols = GRID_COLUMNS
    rows = max(1, int(np.ceil(len(wrong) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.3), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), wrong):
        ax.imshow(x[i], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{mapping[y[i]]}→{mapping[predicted[i]]} {probs[i, predicted[i]]:.0%}", fontsize=8)
    if len(wrong) == 0:
        axes[0, 0].text(0, 0.5, "no misclassified test images", fontsize=10)
    fig.suptitle("misclassified: true→predicted (probability)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return len(wrong)


def plot_reliability(probs: np.ndarray, raw: np.ndarray, y: np.ndarray, temperature: float, path: Path) -> None:
    """Reliability diagram: accuracy against confidence per bin, with the model's temperature and without."""
    import matplotlib.pyplot as plt

    from handwritten.calibration import expected_calibration_error, reliability

    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls=":", label="perfectly calibrated")
    for p, style, label in ((raw, "--s", "without temperature"), (probs, "-o", f"temperature {temperature:.2f}")):
        bins = reliability(p, y)
        pts = [(c, a) for c, a in zip(bins["confidence"], bins["accuracy"]) if c is not None]
        ax.plot([c for c, _ in pts], [a for _, a in pts], style, markersize=4,
                label=f"{label}: error {expected_calibration_error(p, y):.3f}")
    ax.set_xlabel("confidence (probability of the answer)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("reliability (15 bins)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_coverage(probs: np.ndarray, y: np.ndarray, min_confidence: float, path: Path) -> None:
    """Accuracy of the answers kept against the share kept, withholding the least confident first."""
    import matplotlib.pyplot as plt

    from handwritten.calibration import coverage_curve, kept_at

    curve = coverage_curve(probs, y)
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    ax.plot(curve["coverage"], curve["accuracy"], "-", lw=2)
    at = kept_at(probs, y, min_confidence)
    if at["accuracy_kept"] is not None:
        ax.plot([at["kept"]], [at["accuracy_kept"]], "o", color="tab:red",
                label=f"unsure below {min_confidence:g}: {at['kept']:.0%} kept, {at['accuracy_kept']:.1%} right")
        ax.legend(loc="lower left", fontsize=8)
    ax.set_xlabel("share of answers kept")
    ax.set_ylabel("accuracy of the answers kept")
    ax.set_xlim(1, 0)
    ax.grid(alpha=0.3)
    ax.set_title("accuracy when low-confidence answers are withheld")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _rows(pairs) -> str:
    return "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in pairs)


def _facts(summary: dict, temperature: float) -> list[tuple[str, object]]:
    """The report's first table: what was evaluated, on what, and how well."""
    facts = [("model", f"{summary['model']} ({summary['model_name']}, {summary['format']})"),
             ("data", f"{summary['data']} (split {summary['split']})"),
             ("test images", summary["images"]),
             ("accuracy", f"{summary['accuracy']:.2%}"),
             ("top-3 accuracy", f"{summary['top3_accuracy']:.2%}")]
    if "case_insensitive_accuracy" in summary:
        facts.append(("accuracy ignoring case", f"{summary['case_insensitive_accuracy']:.2%} "
                      f"({summary['case_only_error_share']:.0%} of the errors are case only)"))
    if "calibration_error" in summary:
        facts.append(("calibration error (15 bins)", f"{summary['calibration_error']:.4f} with temperature "
                      f"{temperature:.3f}, {summary['calibration_error_uncalibrated']:.4f} without"))
    facts.append(("speed", f"{summary['images_per_second']} images/s"))
    return facts


PLOTS = ("curves", "confusion", "per_class", "misclassified", "reliability", "coverage")
GENERATOR = '<meta name="generator" content="handwritten evaluate">'  # marks a page this module wrote


def check_folder(folder) -> None:
    """An error if writing a report into ``folder`` would replace files it did not write: the
    page or a plot of the same name, beside a ``report.html`` that is not an earlier report's."""
    folder = Path(folder)
    names = ["report.html", *(f"{name}.png" for name in PLOTS)]
    there = [name for name in names if (folder / name).exists() or (folder / name).is_symlink()]
    if not there:
        return
    page = folder / "report.html"
    try:
        ours = page.is_file() and not page.is_symlink() and GENERATOR in page.read_text(encoding="utf-8",
                                                                                          errors="replace")[:2000]
    except OSError:
        ours = False
    if not ours:
        raise HandwrittenError(f"{folder}: holds {', '.join(there)}, not written by an earlier report; nothing was "
                               "changed; give a new or empty folder to --report")


def write_report(folder, summary: dict, extra: dict) -> Path:
    """Write the six PNG plots and ``report.html`` (plots embedded) into ``folder``; returns the page's path.

    A folder holding files of those names that an earlier report did not write is refused (``check_folder``).
    """
    import matplotlib

    matplotlib.use("Agg")  # no display needed; must come before pyplot is imported
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HandwrittenError(f"{folder}: cannot create the report folder ({exc.strerror})") from None
    check_folder(folder)
    mapping = extra["mapping"]
    plots = {name: folder / f"{name}.png" for name in PLOTS}
    plot_curves(extra["meta"], plots["curves"])
    plot_confusion(np.asarray(summary["confusion_matrix"]), mapping, plots["confusion"])
    plot_per_class(summary["per_class"], plots["per_class"])
    shown = plot_misclassified(extra["x"], extra["y"], extra["probs"], mapping, plots["misclassified"])
    temperature = float(summary.get("temperature", 1.0))
    plot_reliability(extra["probs"], extra.get("raw_probs", extra["probs"]), extra["y"], temperature, plots["reliability"])
    min_confidence = float(summary.get("confident", {}).get("min_confidence", 0.5))
    plot_coverage(extra["probs"], extra["y"], min_confidence, plots["coverage"])

    facts = _facts(summary, temperature)
    worst = [(w["character"], f"{w['accuracy']:.0%} of {w['count']}") for w in summary["worst_classes"]]
    pairs = [(f"{p['true']} → {p['predicted']}", f"{p['count']} times") for p in summary["confused_pairs"]]
    note = ('<p class="note">Measured on the synthetic offline sample: this is not an EMNIST result.</p>'
            if summary.get("synthetic") else "")
    sections = [("Training curves", "curves", "Loss and accuracy per epoch, from the history stored in the model."),
                ("Confusion matrix", "confusion", "Each row is a true class; the colour is the share of its test images "
                 "predicted as each class."),
                ("Per-class accuracy", "per_class", "Red bars: classes below 50%."),
                ("Misclassified test images", "misclassified", f"{shown} of the mistakes, most confident first."),
                ("Reliability", "reliability", "Test answers binned by their probability: in each bin, how many were "
                 "right. On the diagonal, an answer given at 80% is right 80 times in 100. The model's temperature, "
                 "fitted on its validation images, is meant to bring the curve there."),
                ("Withholding unsure answers", "coverage", f"Accuracy of the answers kept when the least confident "
                 f"are withheld; the dot is where answers below {min_confidence:g} are marked unsure.")]
    body = "".join(
        f'<section id="{key}"><h2>{title}</h2><p>{text}</p>'
        f'<img alt="{html.escape(title)}" src="{_data_uri(plots[key])}"></section>'
        for title, key, text in sections
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">{GENERATOR}<title>Evaluation of {html.escape(summary['model_name'])}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:0.5em 0 1.5em}}th,td{{padding:3px 12px;border-bottom:1px solid #ddd;text-align:left}}
img{{max-width:100%;border:1px solid #eee}}.note{{background:#fff3cd;padding:0.5em 1em}}
.cols{{display:flex;gap:3em;flex-wrap:wrap}}</style></head>
<body><h1>Evaluation of {html.escape(summary['model_name'])}</h1>{note}
<table>{_rows(facts)}</table>
<div class="cols"><div><h3>Worst classes</h3><table>{_rows(worst)}</table></div>
<div><h3>Most confused pairs</h3><table>{_rows(pairs) or '<tr><td>none</td></tr>'}</table></div></div>
{body}</body></html>
"""
    out = folder / "report.html"
    out.write_text(page, encoding="utf-8")
    return out

"""Run every benchmark, one after another, each in its own process, then write BENCHMARKS.md.

Each script appends its result to ``benchmarks/results/<name>.jsonl``. This run gives them
all one run id, and BENCHMARKS.md is built only from the results carrying it, so the table
always shows what was measured on this run: a benchmark that failed or was not run says so
instead of showing an older figure. After running one benchmark by itself, ``--table-only``
rebuilds the table from the newest full result of each benchmark, every run named with its
date and machine.

    python benchmarks/run_all.py [--quick] [--only loading,server] [--table-only]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import common
import readme_figures

# In the order; each is benchmarks/bench_<name>.py.
BENCHMARKS = ["loading", "training", "time_to_accuracy", "inference", "server", "speed", "growth", "real_handwriting",
              "teach", "rejection", "ruled_paper", "touching"]
TITLES = {
    "loading": "Loading a byclass-sized set",
    "training": "Training throughput",
    "time_to_accuracy": "Time to accuracy (Fashion-MNIST)",
    "inference": "Inference",
    "server": "Server",
    "speed": "Speed: preparing images; server against a bare endpoint",
    "growth": "Growth with data size",
    "rejection": "Not a character, and calibration",
    "real_handwriting": "Real handwriting (offline sample)",
    "teach": "Teaching a new hand",
    "ruled_paper": "Real handwriting on ruled paper and in form boxes",
    "touching": "Real lines with their characters touching",
}
TIMEOUT_S = {"time_to_accuracy": 2100, "real_handwriting": 3600, "teach": 1200}  # the others get DEFAULT_TIMEOUT_S
DEFAULT_TIMEOUT_S = 900
# Results that are not the benchmark's own run: bench_real_handwriting.py, bench_ruled_paper.py and
# bench_touching.py --model score a given file without training on the default sample, and the
# table (like the README) leaves those out.
TABLE_ROWS = {"real_handwriting": lambda r: "sample" in r["details"], "ruled_paper": lambda r: "trained" in r["details"],
              "touching": lambda r: "trained" in r["details"]}


def run_one(name: str, quick: bool, run_id: str) -> tuple[bool, str]:
    """Run ``bench_<name>.py``; returns (succeeded, its last error line when it did not)."""
    script = common.HERE / f"bench_{name}.py"
    cmd = [sys.executable, str(script)] + (["--quick"] if quick else [])
    env = dict(os.environ, HANDWRITTEN_BENCH_RUN=run_id, TF_CPP_MIN_LOG_LEVEL="2")
    limit = TIMEOUT_S.get(name, DEFAULT_TIMEOUT_S) / (3 if quick else 1)
    started = time.perf_counter()
    print(f"== {script.name}{' --quick' if quick else ''}", file=sys.stderr, flush=True)
    # Progress is passed on as it comes; the JSON result is in results/ already.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    timer = threading.Timer(limit, proc.kill)
    timer.start()
    tail: list[str] = []
    for line in proc.stderr:
        sys.stderr.write(line)
        if line.strip():
            tail = (tail + [line.strip()])[-5:]
    code = proc.wait()
    timed_out = not timer.is_alive()
    timer.cancel()
    print(f"== {script.name}: exit {code} after {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    if timed_out and code != 0:
        return False, f"stopped after its time limit of {limit:.0f} s"
    if code != 0:
        return False, f"exit {code}: {(tail or ['no message'])[-1][:300]}"
    return True, ""


def results_of(run_id: str) -> dict[str, dict]:
    """The newest result of each benchmark that carries ``run_id``."""
    out = {}
    for name in BENCHMARKS:
        path = common.RESULTS / f"{name}.jsonl"
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            if line.strip():
                result = json.loads(line)
                if result.get("run_id") == run_id:
                    out[name] = result
    return out


def newest_results() -> dict[str, dict]:
    """The newest full (not quick) result of each benchmark, whichever run wrote it."""
    out = {}
    for name in BENCHMARKS:
        rows = [r for r in readme_figures.results(name) if not r.get("quick") and TABLE_ROWS.get(name, bool)(r)]
        if rows:
            out[name] = rows[-1]
    return out


def _value(fig: dict) -> str:
    value = fig["value"]
    if value is None:
        return "not measured"
    if isinstance(value, float):
        text = f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    else:
        text = f"{value:,}" if isinstance(value, int) else str(value)
    unit = fig["unit"]
    return f"{text}{unit}" if unit in ("x", "%") else f"{text} {unit}".strip()


def _met(fig: dict) -> str:
    if fig["met"] is None:
        return "-" if fig["target"] is None else "not measured"
    return "yes" if fig["met"] else "**missed**"


def _cell(text: str) -> str:
    return str(text).replace("|", "/").replace("\n", " ")


def _machine_line(m: dict) -> str:
    gpu = m.get("gpu") or "no GPU"
    return (f"{m['cores']} CPU cores ({m['cpu']}), {gpu}, {m.get('memory_gib')} GiB memory; "
            f"Python {m['python']}, TensorFlow {m['tensorflow']}, Keras {m['keras']}, "
            f"numpy {m['numpy']}, onnxruntime {m['onnxruntime']}")


def write_markdown(path: Path, results: dict[str, dict], failures: dict[str, str], *, quick: bool,
                   run_id: str, seconds: float, wanted: list[str]) -> None:
    first = next(iter(results.values()), None)
    lines = ["# Benchmarks", ""]
    if quick:
        lines += ["> **QUICK MODE** (`make bench QUICK=1`): smaller data, fewer repetitions and short time",
                  "> budgets, to check that the benchmarks run. These are not the project's figures;",
                  "> `make bench` measures those.", ""]
    runs = sorted({r.get("run_id") or r["date"] for r in results.values()})
    if run_id is None:  # --table-only: rows from the runs that last measured each benchmark
        lines += [f"Built on {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} by "
                  "`python benchmarks/run_all.py --table-only` from the newest full result of each benchmark:"]
        for run in runs:
            names = [n for n, r in results.items() if (r.get("run_id") or r["date"]) == run]
            r = results[names[0]]
            lines += [f"- {', '.join(TITLES[n] for n in names)}: run `{run}`, {r['date'][:16].replace('T', ' ')} UTC, "
                      f"{_machine_line(r['machine'])}; load average {'/'.join(f'{x:g}' for x in r['machine']['load_average'])}."]
        first = None
    else:
        lines += [f"Measured by `make bench{' QUICK=1' if quick else ''}` on "
                  f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} in {seconds / 60:.1f} minutes "
                  f"(run `{run_id}`)."]
    if first:
        lines += [f"Machine: {_machine_line(first['machine'])}."]
        if not first["machine"].get("gpu"):
            lines += ["No GPU on this machine, so there are no GPU rows (training and inference with mixed precision)."]
        loads = sorted({tuple(r["machine"]["load_average"]) for r in results.values()})
        lines += [f"Load average (1/5/15 min) when each benchmark finished: "
                  f"{', '.join('/'.join(f'{x:g}' for x in load) for load in loads)} "
                  "(above the core count means other work shared the CPU)."]
    where = "the machine above" if run_id else "each row's run, named above"
    lines += ["", f"Ratios compare two ways measured in the same run, interleaved; absolute times are for {where}.",
              "", "| # | Figure | Target | Measured | Met | Details |", "|---|---|---|---|---|---|"]
    for number, name in enumerate(BENCHMARKS, 1):
        if name not in wanted:
            continue
        if name in results:
            for fig in results[name]["figures"]:
                lines.append(f"| {number} | {_cell(fig['name'])} | {_cell(fig['target'] or '-')} | "
                             f"{_cell(_value(fig))} | {_met(fig)} | {_cell(fig.get('note', ''))} |")
        else:
            why = failures.get(name, "no result")
            lines.append(f"| {number} | {TITLES[name]} | - | not measured | **missed** | {_cell(why)} |")
    lines += ["", "## How each was measured", ""]
    for number, name in enumerate(BENCHMARKS, 1):
        if name not in wanted:
            continue
        script = common.HERE / f"bench_{name}.py"
        summary = script.read_text().split('"""')[1].strip().splitlines()[0] if script.exists() else ""
        line = f"{number}. **{TITLES[name]}** (`benchmarks/{script.name}`): {summary}"
        if name in results:
            r = results[name]
            data = r["details"].get("data")
            line += f" Data: {data}." if data else ""
            line += f" Sizes: `{json.dumps(r['sizes'])}`. Took {r['seconds']:.0f} s."
        lines.append(line)
    lines += ["", "Every result, with each repetition's raw numbers, is one line of "
              "`benchmarks/results/<name>.jsonl`.", ""]
    path.write_text("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes and budgets, under 5 minutes in all (default: %(default)s)")
    parser.add_argument("--only", default=",".join(BENCHMARKS),
                        help="comma-separated benchmarks to run (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=common.ROOT / "BENCHMARKS.md",
                        help="the Markdown table to write (default: %(default)s)")
    parser.add_argument("--table-only", action="store_true",
                        help="run nothing; rebuild the table from the newest full result of each benchmark "
                             "(default: %(default)s)")
    args = parser.parse_args()
    if args.table_only:
        write_markdown(args.out, newest_results(), {}, quick=False, run_id=None, seconds=0.0, wanted=BENCHMARKS)
        print(f"wrote {args.out} from the newest results", file=sys.stderr)
        return 0
    wanted = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(wanted) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + ("-quick" if args.quick else "")
    started = time.perf_counter()
    failures = {}
    for name in BENCHMARKS:
        if name in wanted:
            ok, why = run_one(name, args.quick, run_id)
            if not ok:
                failures[name] = why
    seconds = time.perf_counter() - started
    results = results_of(run_id)
    write_markdown(args.out, results, failures, quick=args.quick, run_id=run_id, seconds=seconds, wanted=wanted)
    if not args.quick:
        readme_figures.update(common.ROOT / "README.md")
    print(f"wrote {args.out} ({len(results)} of {len(wanted)} benchmarks measured, {seconds / 60:.1f} min)",
          file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

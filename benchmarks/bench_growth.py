"""Growth: loading time and peak memory as the data grows to 1x, 2x and 4x byclass's size.

Ours (memory-mapped uint8, scaled per batch) should grow as a straight line at about the
size of the uint8 files; the usual way (idx2numpy, then the whole array as float32) steps
up to a float copy four times that size. Above 2x the usual way is not run: at 4x it would
need about 17 GB of float32, more than a 24 GB machine shared with other work can spare.
Each measurement runs in a fresh process through ``bench_loading.py``'s worker.

    python benchmarks/bench_growth.py [--quick]
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import common

NAME = "growth"
NEAR = 1.15  # "near the uint8 size": peak memory at most this many times the files' bytes
USUAL_MAX_SCALE = 2.0  # the usual way's float copy above this does not fit beside other work
WORKER = Path(__file__).with_name("bench_loading.py")


def main() -> int:
    args = common.parse_args(__doc__.splitlines()[0], lambda p: p.add_argument(
        "--batch-size", type=int, default=256, help="images per batch when reading ours (default: %(default)s)"))
    started = time.perf_counter()
    scales = (0.05, 0.1, 0.2) if args.quick else (1.0, 2.0, 4.0)
    reps = 2 if args.quick else 1  # the full sizes are large enough to be steady; time goes to model_1's budget
    usual_max = USUAL_MAX_SCALE * (0.05 if args.quick else 1.0)
    folders = {scale: common.byclass_like(scale) for scale in scales}
    for folder in folders.values():
        for path in common.idx_files(folder).values():
            with open(path, "rb") as f:  # into the page cache, as in bench_loading
                while f.read(1 << 24):
                    pass

    runs = {scale: {"ours": [], "usual": []} for scale in scales}
    for rep in range(reps):
        for scale in scales:
            kinds = ("ours", "usual") if scale <= usual_max else ("ours",)
            for kind in kinds:
                runs[scale][kind].append(common.run_worker(WORKER, [kind, folders[scale], args.batch_size]))
        print(f"growth: repetition {rep + 1}/{reps} done", file=sys.stderr, flush=True)

    figures, summary = [], {}
    for scale in scales:
        files = common.idx_files(folders[scale])
        data_bytes = sum(p.stat().st_size for p in files.values())
        row = {"data_bytes": data_bytes}
        for kind, measured in runs[scale].items():
            if measured:
                row[kind] = {"seconds": statistics.median(r["seconds"] for r in measured),
                             "peak_bytes": statistics.median(r["peak_bytes"] for r in measured)}
        summary[str(scale)] = row
        ours = row["ours"]
        near = ours["peak_bytes"] / data_bytes
        note = f"ours {ours['seconds']:.2f} s, {ours['peak_bytes'] / 1e9:.2f} GB"
        if "usual" in row:
            note += f"; usual way {row['usual']['seconds']:.2f} s, {row['usual']['peak_bytes'] / 1e9:.2f} GB"
        else:
            note += (f"; usual way not run above {usual_max:g}x"
                     + (" (quick mode scales the full run's 1x/2x/4x down)" if args.quick else
                        " (its float32 copy would need about 17 GB at 4x)"))
        figures.append(common.figure(
            f"Growth, {scale:g}x byclass ({data_bytes / 1e9:.2f} GB of uint8 files): peak memory / file size, ours",
            near, "x", target=f"<= {NEAR}", met=near <= NEAR, note=note))
    first, last = scales[0], scales[-1]
    slope = summary[str(last)]["ours"]["peak_bytes"] / summary[str(first)]["ours"]["peak_bytes"]
    sizes = {
        "scales_of_byclass": list(scales),
        "images": {str(s): int(round(common.BYCLASS_TRAIN * s)) + int(round(common.BYCLASS_TEST * s)) for s in scales},
        "batch_size": args.batch_size,
        "repetitions": reps,
    }
    details = {
        "data": "generated plain IDX files (blurred random pen strokes), EMNIST byclass names",
        "ours_peak_growth": f"{slope:.2f}x peak memory for {last / first:g}x data",
        "summary": summary,
        "runs": {str(k): v for k, v in runs.items()},
    }
    common.record(NAME, quick=args.quick, sizes=sizes, figures=figures, details=details, started=started)
    return 0


if __name__ == "__main__":
    sys.exit(main())

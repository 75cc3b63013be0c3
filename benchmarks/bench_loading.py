"""Loading a byclass-sized IDX set into what training consumes: time and peak memory.

Three ways, each in a fresh process, interleaved (ours, usual, floor, ours, usual, floor ...):

- ours: ``handwritten.emnist.load`` (uint8, memory-mapped; a ``.gz`` is decompressed once into
  the cache, then memory-mapped), then every image read once in batches the way training
  consumes them: a uint8 batch scaled to float32.
- the usual way: ``idx2numpy.convert_from_file``, then the whole array ``.astype(np.float32) / 255.0``.
- the floor: ``numpy.fromfile`` of the raw bytes; for ``.gz``, ``gzip.open().read()`` into memory.

Peak memory is the process's VmHWM minus its VmHWM after imports, so each way is charged only
for the data. For ours that includes the memory-mapped file pages it touched (page cache the
kernel can drop, but resident all the same). The files are read once before timing, so every
way finds them in the page cache; ``.gz`` is measured for ours twice: the first load, which
decompresses into the cache, and later loads, which only memory-map the cached copy.

    python benchmarks/bench_loading.py [--quick]
"""

from __future__ import annotations

import gzip
import shutil
import statistics
import sys
import time
from pathlib import Path

import common

NAME = "loading"
MEMORY_TARGET = 0.3  # ours / usual, peak memory
TIME_TARGET = 1.5  # ours / floor, time


def work(argv: list[str]) -> dict:
    """One measurement in this process: ``KIND FOLDER BATCH`` with KIND ours, usual or floor."""
    kind, folder, batch = argv[0], Path(argv[1]), int(argv[2])
    import numpy as np

    # Each way imports only what it uses; the memory baseline is taken after the imports.
    if kind == "ours":
        from handwritten.emnist import load
    elif kind == "usual":
        import idx2numpy
    files = common.idx_files(folder)
    base = common.memory_status()
    t0 = time.perf_counter()
    pixels = 0
    if kind == "ours":
        data = load(folder)
        loaded = time.perf_counter() - t0
        scale = np.float32(1 / 255)
        for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
            for i in range(0, len(x), batch):
                images = x[i:i + batch].astype(np.float32)
                images *= scale
                labels = np.asarray(y[i:i + batch], dtype=np.int32)  # noqa: F841 (read, as training does)
                pixels += images.size
    elif kind == "usual":
        def read(path):
            if path.suffix == ".gz":
                with gzip.open(path, "rb") as f:
                    return idx2numpy.convert_from_file(f)
            return idx2numpy.convert_from_file(str(path))

        arrays = {part: read(path) for part, path in files.items()}
        x_train = arrays["train-images"].astype(np.float32) / 255.0
        x_test = arrays["test-images"].astype(np.float32) / 255.0
        pixels = x_train.size + x_test.size
        loaded = None
    else:
        arrays = {}  # all held at once, as the other two ways hold theirs
        for part, path in files.items():
            if path.suffix == ".gz":
                with gzip.open(path, "rb") as f:
                    arrays[part] = np.frombuffer(f.read(), dtype=np.uint8)
            else:
                arrays[part] = np.fromfile(path, dtype=np.uint8)
        pixels = arrays["train-images"].size + arrays["test-images"].size - 32  # less the two headers
        loaded = None
    seconds = time.perf_counter() - t0
    end = common.memory_status()
    return {
        "kind": kind,
        "seconds": seconds,
        "load_seconds": loaded,
        "peak_bytes": end["VmHWM"] - base["VmHWM"],
        "pixels": int(pixels),
    }


def _warm_page_cache(folder: Path) -> None:
    """Read every file once, so no way pays for the disk and all compare on the same footing."""
    for path in common.idx_files(folder).values():
        with open(path, "rb") as f:
            while f.read(1 << 24):
                pass


def _summary(runs: list[dict]) -> dict:
    return {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "peak_bytes": statistics.median(r["peak_bytes"] for r in runs),
        "runs": runs,
    }


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


def _interleaved_runs(plain_folder: Path, gz_folder: Path, batch_size: int, reps: int) -> dict[str, list[dict]]:
    """Each way ``reps`` times, each run in a fresh process, the ways interleaved; the runs by way."""
    # A cache of our own, emptied before each first .gz load.
    cache = common.DATA / "cache-loading"
    env = {"HANDWRITTEN_CACHE": str(cache)}
    runs: dict[str, list[dict]] = {k: [] for k in
                                   ("plain-ours", "plain-usual", "plain-floor",
                                    "gz-ours-first", "gz-ours-cached", "gz-usual", "gz-floor")}
    script = Path(__file__)
    for rep in range(reps):
        for kind in ("ours", "usual", "floor"):
            runs[f"plain-{kind}"].append(common.run_worker(script, [kind, plain_folder, batch_size], env=env))
        shutil.rmtree(cache, ignore_errors=True)
        runs["gz-ours-first"].append(common.run_worker(script, ["ours", gz_folder, batch_size], env=env))
        runs["gz-ours-cached"].append(common.run_worker(script, ["ours", gz_folder, batch_size], env=env))
        for kind in ("usual", "floor"):
            runs[f"gz-{kind}"].append(common.run_worker(script, [kind, gz_folder, batch_size], env=env))
        print(f"loading: repetition {rep + 1}/{reps} done", file=sys.stderr, flush=True)
    shutil.rmtree(cache, ignore_errors=True)
    return runs


def _figures(s: dict[str, dict]) -> list[dict]:
    """Ours against the usual way (peak memory) and the floor (time), for plain files and for .gz."""
    def ratio(a, b, what):
        return s[a][what] / s[b][what]

    def absolute(*keys):
        label = {"ours": "ours", "usual": "usual way", "floor": "floor"}
        return "; ".join(f"{label[k.split('-')[1]]} {s[k]['seconds']:.2f} s, {_gb(s[k]['peak_bytes'])}" for k in keys)

    figures = []
    for fmt, ours in (("plain", "plain-ours"), ("gz", "gz-ours-first"), ("gz", "gz-ours-cached")):
        label = {"plain-ours": "plain files", "gz-ours-first": ".gz, first load (decompresses into the cache)",
                 "gz-ours-cached": ".gz, later loads (cached copy)"}[ours]
        mem = ratio(ours, f"{fmt}-usual", "peak_bytes")
        figures.append(common.figure(
            f"Loading, {label}: peak memory, ours / usual way", mem, "x",
            target=f"<= {MEMORY_TARGET}", met=mem <= MEMORY_TARGET, note=absolute(ours, f"{fmt}-usual")))
        t = ratio(ours, f"{fmt}-floor", "seconds")
        figures.append(common.figure(
            f"Loading, {label}: time, ours / floor", t, "x",
            target=f"<= {TIME_TARGET}", met=t <= TIME_TARGET, note=absolute(ours, f"{fmt}-floor")))
    return figures


def _sizes(scale: float, plain_folder: Path, gz_folder: Path, batch_size: int, reps: int) -> dict:
    """How much was loaded: images, bytes on disk plain and gzipped, batch size and repetitions."""
    files = common.idx_files(plain_folder)
    gz_files = common.idx_files(gz_folder)
    return {
        "scale_of_byclass": scale,
        "train_images": int(round(common.BYCLASS_TRAIN * scale)),
        "test_images": int(round(common.BYCLASS_TEST * scale)),
        "plain_bytes": sum(p.stat().st_size for p in files.values()),
        "gz_bytes": sum(p.stat().st_size for p in gz_files.values()),
        "batch_size": batch_size,
        "repetitions": reps,
    }


def main() -> int:
    args = common.parse_args(__doc__.splitlines()[0], lambda p: p.add_argument(
        "--batch-size", type=int, default=256, help="images per batch when reading ours (default: %(default)s)"))
    if args.worker is not None:
        common.worker_output(work(args.worker))
        return 0
    started = time.perf_counter()
    scale = 0.1 if args.quick else 1.0
    reps = 2  # each way twice, interleaved; the full run's time goes mostly to model_1's budgets
    gz_folder = common.byclass_like(scale, gz=True)
    plain_folder = gz_folder.parent / "plain"
    for folder in (plain_folder, gz_folder):
        _warm_page_cache(folder)

    runs = _interleaved_runs(plain_folder, gz_folder, args.batch_size, reps)
    s = {k: _summary(v) for k, v in runs.items()}
    sizes = _sizes(scale, plain_folder, gz_folder, args.batch_size, reps)
    details = {
        "data": "generated: blurred random pen strokes, EMNIST byclass file names and sizes; "
                f"gzip keeps {sizes['gz_bytes'] / sizes['plain_bytes']:.0%} of the bytes",
        "page_cache": "warm (every file read once before timing)",
        "summary": {k: {"seconds": v["seconds"], "peak_bytes": v["peak_bytes"]} for k, v in s.items()},
        "runs": runs,
    }
    common.record(NAME, quick=args.quick, sizes=sizes, figures=_figures(s), details=details, started=started)
    return 0


if __name__ == "__main__":
    sys.exit(main())

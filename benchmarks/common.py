"""What every benchmark script shares: the machine, results on disk, workers, generated data.

Each ``bench_*.py`` prints one JSON object and appends it as one line to
``benchmarks/results/<name>.jsonl``. A result carries the machine it ran on, the date, the
sizes used, whether quick mode was on, and a list of ``figures`` (name, target, measured
value, whether the target was met) that ``run_all.py`` turns into BENCHMARKS.md.

Measurements that need clean peak-memory or cold-start figures run in a fresh subprocess:
the script calls itself with ``--worker`` and reads back one JSON line.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import socket
import struct
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
DATA = HERE / ".data"  # generated files, git-ignored; kept so reruns reuse them
FASHION = Path("/usr/share/datasets/fashion-mnist")

# EMNIST byclass: 697,932 training and 116,323 test images of 28x28 bytes.
BYCLASS_TRAIN = 697_932
BYCLASS_TEST = 116_323
BYCLASS_CLASSES = 62


# ----------------------------------------------------------------------------- the machine


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _gpus() -> list[str]:
    """GPU names from nvidia-smi, without importing TensorFlow (which takes seconds)."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def machine() -> dict:
    """The machine a figure was measured on; absolute times mean nothing without it."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cores": cores,
        "cpu": _cpu_model(),
        "gpu": ", ".join(_gpus()) or None,
        "memory_gib": _mem_total_gib(),
        # A busy machine slows everything; the load average says how busy it was.
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "tensorflow": _version("tensorflow"),
        "keras": _version("keras"),
        "numpy": _version("numpy"),
        "onnxruntime": _version("onnxruntime"),
        "commit": _commit(),
    }


def _commit() -> str | None:
    """The code measured: the repository's commit, with "+changes" when the tree differs from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "src"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (head + ("+changes" if dirty else "")) or None


# ----------------------------------------------------------------------------- results


def parse_args(description: str, extra=None) -> argparse.Namespace:
    """The options every benchmark takes; ``extra(parser)`` adds a script's own."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes and budgets, for a check in a few minutes (default: %(default)s)")
    parser.add_argument("--worker", nargs=argparse.REMAINDER, default=None,
                        help="internal: run one measurement in this process and print it as JSON (default: %(default)s)")
    if extra:
        extra(parser)
    return parser.parse_args()


def figure(name: str, value, unit: str, *, target: str | None = None, met: bool | None = None,
           note: str = "") -> dict:
    """One row of BENCHMARKS.md: ``met`` is None where there is no target to meet."""
    if isinstance(value, float):
        value = round(value, 4)
    return {"name": name, "value": value, "unit": unit, "target": target, "met": met, "note": note}


def record(name: str, *, quick: bool, sizes: dict, figures: list[dict], details: dict,
           started: float) -> dict:
    """Print the result as one JSON object and append it to ``results/<name>.jsonl``."""
    result = {
        "benchmark": name,
        # run_all.py sets the run id, so BENCHMARKS.md shows only what this run measured.
        "run_id": os.environ.get("HANDWRITTEN_BENCH_RUN"),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quick": quick,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": machine(),
        "sizes": sizes,
        "figures": figures,
        "details": details,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    line = json.dumps(result, sort_keys=False)
    with open(RESULTS / f"{name}.jsonl", "a") as f:
        f.write(line + "\n")
    print(line, flush=True)
    return result


def percentile(values, q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


# ----------------------------------------------------------------------------- workers


def memory_status() -> dict[str, int]:
    """VmHWM (peak resident), VmRSS and RssAnon of this process, in bytes."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            out[key] = int(rest.split()[0]) * 1024
    return out


def run_worker(script: str | Path, args: list[str], *, env: dict | None = None, timeout: float = 1800) -> dict:
    """Run ``script --worker args`` in a fresh Python and return the JSON of its last line."""
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    cmd = [sys.executable, str(script), "--worker", *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"worker {' '.join(cmd[1:])} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def worker_output(result: dict) -> None:
    print(json.dumps(result), flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fashion_available() -> bool:
    return (FASHION / "train-images-idx3-ubyte.gz").exists()


# ----------------------------------------------------------------------------- generated data


def _stroke_bank(count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` 28x28 uint8 images of a few blurred pen strokes, the way EMNIST's characters look:
    mostly zero, bright strokes with grey edges, so compressed sizes and speeds are realistic."""
    from scipy.ndimage import gaussian_filter

    strokes, points = 3, 48
    # Quadratic Bezier curves through random points inside the 20x20 box EMNIST uses.
    p = rng.uniform(4, 23, size=(count, strokes, 3, 2))
    t = np.linspace(0, 1, points)[None, None, :, None]
    curve = ((1 - t) ** 2 * p[:, :, None, 0] + 2 * (1 - t) * t * p[:, :, None, 1] + t**2 * p[:, :, None, 2])
    curve = curve.reshape(count, strokes * points, 2)
    ij = np.clip(np.rint(curve).astype(np.int64), 0, 27)
    flat = np.arange(count)[:, None] * 784 + ij[..., 0] * 28 + ij[..., 1]
    canvas = np.bincount(flat.ravel(), minlength=count * 784).reshape(count, 28, 28).astype(np.float32)
    canvas = gaussian_filter(np.minimum(canvas, 1.0), sigma=(0, 1.2, 1.2))
    # A pen of varying width: the stroke core near full ink, the edges fading to grey, and a
    # little noise in the ink, as in scans. This compresses like EMNIST's files (gzip leaves
    # about a quarter to a third of the bytes), which an all-or-nothing image would not.
    gain = rng.uniform(2.0, 4.0, size=(count, 1, 1)).astype(np.float32)
    ink = np.clip((canvas - 0.05) * gain, 0.0, 1.0) * 255
    ink = np.where(ink > 0, np.clip(ink + rng.normal(0, 12, ink.shape), 1, 255), 0)
    return np.rint(ink).astype(np.uint8)


def _image_chunks(count: int, seed: int, chunk: int = 65_536):
    """``count`` images in chunks: bank images shifted and turned, so no two neighbours repeat."""
    rng = np.random.default_rng(seed)
    bank = _stroke_bank(8192, rng)
    for start in range(0, count, chunk):
        n = min(chunk, count - start)
        images = bank[rng.integers(0, len(bank), n)]
        block = 64  # one shift and orientation per block of 64 images: cheap, and varied enough for gzip
        for b in range(0, n, block):
            part = images[b:b + block]
            part = np.roll(part, tuple(rng.integers(-2, 3, 2)), axis=(1, 2))
            if rng.random() < 0.5:
                part = part.transpose(0, 2, 1)
            images[b:b + block] = np.rot90(part, k=int(rng.integers(0, 4)), axes=(1, 2))
        yield images


def _write_idx(paths: list[Path], shape: tuple[int, ...], chunks) -> None:
    """Write one IDX file (plain and/or .gz, chosen by each path's suffix) from chunks, atomically."""
    header = struct.pack(">HBB", 0, 0x08, len(shape)) + struct.pack(f">{len(shape)}I", *shape)
    tmps = [p.with_name(p.name + ".tmp") for p in paths]
    # Level 6 is gzip's own default, the level data sets are usually published with.
    files = [gzip.GzipFile(t, "wb", compresslevel=6, mtime=0) if p.suffix == ".gz" else open(t, "wb")
             for p, t in zip(paths, tmps)]
    try:
        for f in files:
            f.write(header)
        for data in chunks:
            raw = np.ascontiguousarray(data).tobytes()
            for f in files:
                f.write(raw)
    finally:
        for f in files:
            f.close()
    for p, t in zip(paths, tmps):
        os.replace(t, p)


def byclass_like(scale: float, *, gz: bool = False, seed: int = 0) -> Path:
    """A folder of EMNIST byclass-named IDX files, ``scale`` times byclass's size, generated once.

    Returns the folder with the plain files; with ``gz=True`` the folder with the ``.gz`` files
    (both are written in one pass, since the plain files come for free with the compressed ones).
    """
    tag = f"byclass-{scale:g}x"
    plain, packed = DATA / tag / "plain", DATA / tag / "gz"
    wanted = packed if gz else plain
    stem = "emnist-byclass-{}-idx{}-ubyte"
    names = [stem.format(part, 3 if "images" in part else 1)
             for part in ("train-images", "train-labels", "test-images", "test-labels")]
    suffix = ".gz" if gz else ""
    if all((wanted / (n + suffix)).exists() for n in names):
        return wanted
    plain.mkdir(parents=True, exist_ok=True)
    if gz:
        packed.mkdir(parents=True, exist_ok=True)
    print(f"generating {tag} {'plain and gzipped' if gz else 'plain'} IDX files in {DATA / tag} ...",
          file=sys.stderr, flush=True)
    rng = np.random.default_rng(seed + 1)
    for which, size, offset in (("train", BYCLASS_TRAIN, 0), ("test", BYCLASS_TEST, 1)):
        n = max(1, int(round(size * scale)))
        targets = lambda name: [plain / name] + ([packed / (name + ".gz")] if gz else [])  # noqa: E731
        _write_idx(targets(stem.format(f"{which}-images", 3)), (n, 28, 28), _image_chunks(n, seed * 10 + offset))
        labels = rng.integers(0, BYCLASS_CLASSES, n).astype(np.uint8)
        _write_idx(targets(stem.format(f"{which}-labels", 1)), (n,), [labels])
    return wanted


def idx_files(folder: Path) -> dict[str, Path]:
    """The four IDX files of a generated folder, by part."""
    out = {}
    for part in ("train-images", "train-labels", "test-images", "test-labels"):
        out[part] = next(folder.glob(f"emnist-byclass-{part}-idx*"))
    return out


# ----------------------------------------------------------------------------- a model to measure

CACHE = DATA / "cache"  # the package's cache (decompressed .gz files) while benchmarking


def handwritten_env() -> dict:
    """Environment for ``handwritten`` subprocesses: a cache of the benchmarks' own, quiet TensorFlow."""
    return dict(os.environ, HANDWRITTEN_CACHE=str(CACHE), TF_CPP_MIN_LOG_LEVEL="2")


def handwritten(*args, timeout: float = 1200) -> subprocess.CompletedProcess:
    """Run the ``handwritten`` command; raise with its error output when it fails."""
    cmd = [sys.executable, "-m", "handwritten", *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=handwritten_env(), timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[2:])} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def code_key(*names: str) -> str:
    """A short digest of these modules of the package: a benchmark that keeps what they made between
    runs keeps it under this key, so that a change to them makes it again."""
    import hashlib

    import handwritten

    package = Path(handwritten.__file__).parent
    digest = hashlib.sha256()
    for name in names:
        digest.update((package / name).read_bytes())
    return digest.hexdigest()[:10]


def sample_code_key() -> str:
    """A short digest of the code that draws the offline sample (see :func:`code_key`)."""
    return code_key("sample.py", "strokes.py", "real_digits.py", "emnist.py")


def training_code_key() -> str:
    """A short digest of the code that decides how a model is built and trained by default."""
    return code_key("settings.py", "models.py", "pipeline.py")


def training_data() -> tuple[Path, str]:
    """Fashion-MNIST when installed, else the offline synthetic sample; with a line saying which."""
    if fashion_available():
        return FASHION, f"Fashion-MNIST ({FASHION})"
    folder = DATA / "sample" / "emnist"
    if not (folder / "SYNTHETIC-SAMPLE.txt").exists():
        handwritten("sample", "--dir", folder)
    return folder, "the offline synthetic sample (Fashion-MNIST not installed)"


def run_model_path() -> Path:
    """Where this run's model_2 goes: trained once (by the time-to-accuracy benchmark when it
    runs first, else by ``benchmark_model``) and measured by the inference and server benchmarks."""
    run = os.environ.get("HANDWRITTEN_BENCH_RUN") or f"standalone-{os.getpid()}"
    return DATA / "models" / f"model_2-{run}.keras"


def clear_old_models() -> Path:
    """Delete earlier runs' models (and their checkpoints); return this run's model path."""
    path = run_model_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    for old in path.parent.glob("model_2-*"):
        if not old.name.startswith(path.name):
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    return path


def benchmark_model(quick: bool, given: str | None = None) -> tuple[Path, str]:
    """The model ``given``, or this run's model_2, trained here if no benchmark trained it yet.

    The figures measured with it are speeds, which do not depend on how well it was trained;
    one epoch (on a fifth of the data in quick mode, half of it otherwise) is enough.
    """
    if given:
        return Path(given), f"the given model {given}"
    path = run_model_path()
    if not path.exists():
        clear_old_models()
        data, _ = training_data()
        handwritten("train", "--model", "model_2", "--data", data, "--epochs", 1, "--part", 0.2 if quick else 0.5,
                    "--seed", 0, "--out", path, "--json")
    from handwritten.modelio import read_meta

    meta = read_meta(path)
    part = meta.get("config", {}).get("part", 1.0)
    accuracy = meta.get("test_accuracy")
    note = (f"model_2 trained by this run: {len(meta.get('history') or [])} epoch(s) on {part:.0%} of "
            f"{meta.get('data')}" + (f", test accuracy {accuracy:.3f}" if accuracy is not None else ""))
    return path, note

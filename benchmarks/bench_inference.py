"""Inference: single-image latency from a PNG file to a character, and batch throughput.

Both for the Keras model and for its ONNX export run in onnxruntime, through
``handwritten.predict.Recognizer``. Latency: ``Recognizer.predict([png_path])`` on PNG files
on disk (test images drawn dark on light at 112x112, as a scan would give), warm, with the
two models called in turn, image by image. Throughput: ``Recognizer.predict_arrays`` on
28x28 uint8 test images (framing already done, so it measures scaling plus the network),
the two models in turn, several repetitions, the median kept.

    python benchmarks/bench_inference.py [--quick]
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import common

NAME = "inference"
P50_TARGET_MS = 5.0  # model_2 in onnxruntime
THROUGHPUT_TARGET = 20_000  # images/s, model_2 in onnxruntime


def _test_images(data: Path, count: int):
    from handwritten.emnist import load

    return load(data).x_test[:count].copy()


def _write_pngs(images, folder: Path) -> list[Path]:
    """Each test image as a dark-on-light 112x112 PNG, the way a scanned character arrives."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = folder / f"{i:04d}.png"
        Image.fromarray(255 - image).resize((112, 112), Image.BILINEAR).save(path)
        paths.append(path)
    return paths


def _recognizer(path: Path):
    from handwritten.predict import Recognizer

    return Recognizer(str(path))


def _throughput(recognizer, x, batch_size: int) -> float:
    t0 = time.perf_counter()
    out = recognizer.predict_arrays(x, batch_size=batch_size)
    seconds = time.perf_counter() - t0
    if len(out) != len(x):
        raise RuntimeError(f"predict_arrays returned {len(out)} results for {len(x)} images")
    return len(x) / seconds


def _options(parser) -> None:
    """This benchmark's own options, beside the ones every benchmark takes."""
    parser.add_argument("--batch-size", type=int, default=256,
                        help="images per call when measuring throughput (default: %(default)s)")
    parser.add_argument("--model", help="measure this .keras/.h5 model instead of this run's model_2 (default: %(default)s)")


def _warm_up(recognizers: dict, pngs: list[Path], x, batch_size: int) -> None:
    """The first calls build graphs, sessions and caches; make them before anything is timed."""
    for r in recognizers.values():
        for path in pngs:
            r.predict([str(path)])
        r.predict_arrays(x, batch_size=batch_size)


def _latencies(recognizers: dict, pngs: list[Path], calls: int) -> tuple[dict[str, list[float]], int]:
    """Milliseconds per single-image call, each model in turn and preprocessing alone; with the
    number of calls on which the Keras and ONNX models gave the same character."""
    from handwritten.images import preprocess

    # Preprocessing alone (decode, find the ink, frame it in 28x28) shows how much of a call is the model.
    latency = {k: [] for k in (*recognizers, "preprocess")}
    framing = recognizers["onnx"].framing
    agree = 0
    for i in range(calls):
        path = str(pngs[i % len(pngs)])
        answers = {}
        for kind, r in recognizers.items():
            t0 = time.perf_counter()
            result = r.predict([path])
            latency[kind].append((time.perf_counter() - t0) * 1000)
            answers[kind] = result[0]["character"]
        t0 = time.perf_counter()
        preprocess(path, framing)
        latency["preprocess"].append((time.perf_counter() - t0) * 1000)
        agree += answers["keras"] == answers["onnx"]
    return latency, agree


def _throughputs(recognizers: dict, x, batch_size: int, reps: int) -> dict[str, list[float]]:
    """Images per second of each model over ``reps`` repetitions, the models in turn."""
    throughput = {k: [] for k in recognizers}
    for _ in range(reps):
        for kind, r in recognizers.items():
            throughput[kind].append(_throughput(r, x, batch_size))
    return throughput


def _summary(latency: dict, throughput: dict) -> dict:
    """p50 and p99 latency and median throughput, by model (and preprocessing, which has no throughput)."""
    return {
        kind: {
            "p50_ms": common.percentile(latency[kind], 50),
            "p99_ms": common.percentile(latency[kind], 99),
            "images_per_second": statistics.median(throughput[kind]) if kind in throughput else None,
        }
        for kind in latency
    }


def _figures(stats: dict, batch_size: int) -> list[dict]:
    """The rows of BENCHMARKS.md: the ONNX model against the targets, the Keras model beside it."""
    onnx, keras_, pre = stats["onnx"], stats["keras"], stats["preprocess"]
    return [
        common.figure("Inference, model_2 in onnxruntime: latency p50, PNG file to character", onnx["p50_ms"], "ms",
                      target=f"< {P50_TARGET_MS:g} ms", met=onnx["p50_ms"] < P50_TARGET_MS,
                      note=f"p99 {onnx['p99_ms']:.2f} ms; of which preprocessing the PNG p50 {pre['p50_ms']:.2f} ms; "
                           f"Keras p50 {keras_['p50_ms']:.2f} ms, p99 {keras_['p99_ms']:.2f} ms"),
        common.figure("Inference, model_2 in onnxruntime: batch throughput", onnx["images_per_second"], "images/s",
                      target=f">= {THROUGHPUT_TARGET:,}", met=onnx["images_per_second"] >= THROUGHPUT_TARGET,
                      note=f"Keras {keras_['images_per_second']:,.0f} images/s; batches of {batch_size}, "
                           "Recognizer.predict_arrays on 28x28 uint8"),
        common.figure("Inference, model_2 in Keras: latency p50, PNG file to character", keras_["p50_ms"], "ms",
                      note=f"p99 {keras_['p99_ms']:.2f} ms"),
    ]


def main() -> int:
    args = common.parse_args(__doc__.splitlines()[0], _options)
    started = time.perf_counter()
    quick = args.quick
    calls = 100 if quick else 300  # single-image calls per model
    batch_images = 2_000 if quick else 10_000
    reps = 3

    model_path, model_note = common.benchmark_model(quick, args.model)
    onnx_path = common.DATA / "models" / f"{model_path.stem}.onnx"
    common.handwritten("export", model_path, "--format", "onnx", "--out", onnx_path)
    data, which = common.training_data()
    images = _test_images(data, max(batch_images, 200))
    pngs = _write_pngs(images[:200], common.DATA / "inference-png")
    x = images[:batch_images]

    recognizers = {"keras": _recognizer(model_path), "onnx": _recognizer(onnx_path)}
    _warm_up(recognizers, pngs[:10], x, args.batch_size)
    latency, agree = _latencies(recognizers, pngs, calls)
    throughput = _throughputs(recognizers, x, args.batch_size, reps)
    stats = _summary(latency, throughput)

    sizes = {"single_image_calls": calls, "png_files": len(pngs), "png_size": [112, 112],
             "batch_images": int(len(x)), "batch_size": args.batch_size, "throughput_repetitions": reps}
    details = {
        "data": f"{which}, test images; {model_note}",
        "model": str(model_path.name),
        "keras_onnx_agreement": agree / calls,
        "throughput_method": "Recognizer.predict_arrays(x_uint8, batch_size)",
        "summary": stats,
        "latency_ms": {k: [round(v, 3) for v in vals] for k, vals in latency.items()},
        "throughput_runs": throughput,
    }
    common.record(NAME, quick=quick, sizes=sizes, figures=_figures(stats, args.batch_size), details=details,
                  started=started)
    return 0


if __name__ == "__main__":
    sys.exit(main())

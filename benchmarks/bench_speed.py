"""Speed: preparing an image on one core, and the server against a bare endpoint, interleaved.

Preparing (``images.preprocess``: decode, grey, normalise, find the character, frame it in
28x28) is timed on a 280x280 canvas PNG (a stroke on a transparent background, as drawing apps
save it; the web page sends its canvas white and opaque) and on a 12-megapixel JPEG phone photo (4000x3000, uneven lighting, one character):
the median of many calls in this process, whose libraries run one thread each; decoding the
canvas PNG alone with Pillow is timed beside it, as what the usual way spends before any
preparing (the package decodes plain PNGs with Wuffs, several times faster). Both wall
time and the thread's CPU time are recorded; the machine may be shared, and CPU time is what
one core spends whoever else is running.

The server (``handwritten serve MODEL`` with its defaults: the model in onnxruntime, one worker
process per core) and a bare FastAPI endpoint that decodes the same PNG with Pillow, resizes it
to 28x28 and calls the same ONNX model (``bare_server.py``, one uvicorn process, as uvicorn
runs an app by default) run side by side on 127.0.0.1; ``server_load.py`` sends each the same
canvas PNGs from 8 client threads, in alternating rounds, so both see the same load from
whatever else runs on the machine. The figure to meet is the ratio of their request rates.

    python benchmarks/bench_speed.py [--quick] [--model PATH]
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time

import common
import server_load

NAME = "speed"
CLIENTS = 8
START_TIMEOUT_S = 300
CANVAS_TARGET_MS, PHOTO_TARGET_MS = 1.0, 60.0
RATIO_TARGET, P99_TARGET_MS = 0.5, 50.0


def canvas_png(seed: int = 0) -> bytes:
    """A 280x280 RGBA PNG: a dark curved stroke on a transparent background, as a drawing app saves a canvas."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    image = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    points = [tuple(int(v) for v in p) for p in rng.uniform(60, 220, (5, 2))]
    ImageDraw.Draw(image).line(points, fill=(0, 0, 0, 255), width=18, joint="curve")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def photo_jpeg(seed: int = 0, width: int = 4000, height: int = 3000) -> bytes:
    """A 12-megapixel JPEG: paper lit unevenly, a little sensor noise, one character in a thick pen."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    light = 200 - 60 * xx / width - 30 * yy / height
    grey = np.clip(light + rng.normal(0, 4, (height, width)), 0, 255).astype(np.uint8)
    image = Image.fromarray(grey).convert("RGB")
    points = [tuple(int(v) for v in p) for p in rng.uniform([1200, 800], [2800, 2200], (5, 2))]
    ImageDraw.Draw(image).line(points, fill=(40, 40, 50), width=40, joint="curve")
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def decode_png(data: bytes):
    """What decoding alone costs: the PNG to pixels with Pillow, as the bare endpoint begins."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image


def time_preprocess(data: bytes, calls: int, fn=None) -> dict:
    """Median wall and CPU milliseconds of ``fn`` (``images.preprocess``) on ``data``, after one warm-up call."""
    from handwritten.images import preprocess

    fn = fn or preprocess
    fn(data)
    wall, cpu = [], []
    for _ in range(calls):
        started, used = time.perf_counter(), time.thread_time()
        fn(data)
        cpu.append(1000 * (time.thread_time() - used))
        wall.append(1000 * (time.perf_counter() - started))
    return {"calls": calls, "wall_ms": round(common.percentile(wall, 50), 3),
            "cpu_ms": round(common.percentile(cpu, 50), 3), "wall_min_ms": round(min(wall), 3)}


def start(cmd: list[str], url: str):
    proc = subprocess.Popen(cmd, env=common.handwritten_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    server_load.wait_until_up(url, proc, START_TIMEOUT_S)
    return proc


def stop(proc) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out or ""


def interleaved(urls: dict[str, str], rounds: int, requests: int, limit_s: float) -> dict[str, dict]:
    """Alternate rounds of load on each server; per server the totals and the latencies of all rounds."""
    totals = {name: {"completed": 0, "seconds": 0.0, "errors": 0, "latencies": [], "samples": []} for name in urls}
    for _ in range(rounds):
        for name, url in urls.items():
            run = server_load.run_load(url, requests, CLIENTS, limit_s, keep_latencies=True)
            t = totals[name]
            t["completed"] += run["completed"]
            t["seconds"] += run["seconds"]
            t["errors"] += run["errors"] + run["requested"] - run["completed"]
            t["latencies"] += run["latencies"]
            t["samples"] += run["error_samples"]
    out = {}
    for name, t in totals.items():
        lat = sorted(t.pop("latencies"))
        out[name] = {**t, "requests_per_s": round(t["completed"] / t["seconds"], 1) if t["seconds"] else 0.0,
                     "p50_ms": round(1000 * server_load.percentile(lat, 50), 2),
                     "p99_ms": round(1000 * server_load.percentile(lat, 99), 2)}
    return out


def servers(model_path, quick: bool) -> tuple[dict, str]:
    """Both servers measured in one run; their figures and the note the server logged about its model."""
    from handwritten.predict import Recognizer
    from handwritten.runtime import cached_onnx

    os.environ["HANDWRITTEN_CACHE"] = str(common.CACHE)  # where the server will look for the conversion
    onnx_path = model_path if str(model_path).endswith(".onnx") else cached_onnx(Recognizer(model_path))
    ports = {"handwritten": common.free_port(), "bare": common.free_port()}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    procs = {}
    try:
        procs["handwritten"] = start([sys.executable, "-m", "handwritten", "serve", str(model_path), "--host", "127.0.0.1",
                                      "--port", str(ports["handwritten"]), "--quiet"], urls["handwritten"])
        procs["bare"] = start([sys.executable, str(common.HERE / "bare_server.py"), str(onnx_path), str(ports["bare"])],
                              urls["bare"])
        for url in urls.values():  # warm: first calls allocate
            server_load.run_load(url, 4 * CLIENTS, CLIENTS, 60)
        runs = interleaved(urls, 3 if quick else 5, 300 if quick else 800, 60)
    finally:
        logs = {name: stop(proc) for name, proc in procs.items()}
    note = next((line for line in logs.get("handwritten", "").splitlines() if "runs in" in line), "")
    return runs, note


def worker_note(runtime_note: str) -> str:
    """How many worker processes the server's first log line says it started."""
    import re

    found = re.search(r"(\d+) worker process(es)?", runtime_note)
    return found.group(0) if found else "worker processes not logged"


def main() -> int:
    args = common.parse_args(__doc__.splitlines()[0], lambda p: p.add_argument(
        "--model", help="serve this model instead of this run's model_2 (default: %(default)s)"))
    started = time.perf_counter()
    quick = args.quick
    load = os.getloadavg()
    canvas = time_preprocess(canvas_png(), 300 if quick else 1000)
    decode = time_preprocess(canvas_png(), 300 if quick else 1000, decode_png)
    photo = time_preprocess(photo_jpeg(), 10 if quick else 30)

    model_path, model_note = common.benchmark_model(quick, args.model)
    runs, runtime_note = servers(model_path, quick)
    ours, bare = runs["handwritten"], runs["bare"]
    ratio = ours["requests_per_s"] / bare["requests_per_s"] if bare["requests_per_s"] else 0.0
    load_after = os.getloadavg()
    busy = f"load average {load[0]:.1f} before, {load_after[0]:.1f} after, on {os.cpu_count()} cores"
    figures = [
        common.figure("Preparing a 280x280 canvas PNG, median on one core (CPU time)", canvas["cpu_ms"], "ms",
                      target=f"<= {CANVAS_TARGET_MS:g}", met=canvas["cpu_ms"] <= CANVAS_TARGET_MS,
                      note=f"wall {canvas['wall_ms']} ms median, {canvas['wall_min_ms']} ms fastest; decoding the "
                           f"PNG alone with Pillow takes {decode['cpu_ms']} ms; {busy}"),
        common.figure("Preparing a 12-megapixel JPEG photo, median on one core (CPU time)", photo["cpu_ms"], "ms",
                      target=f"<= {PHOTO_TARGET_MS:g}", met=photo["cpu_ms"] <= PHOTO_TARGET_MS,
                      note=f"wall {photo['wall_ms']} ms median, {photo['wall_min_ms']} ms fastest"),
        common.figure(f"Server / bare endpoint, requests per second, {CLIENTS} clients, interleaved", round(ratio, 3),
                      "x", target=f">= {RATIO_TARGET:g}", met=ratio >= RATIO_TARGET,
                      note=f"{ours['requests_per_s']} vs {bare['requests_per_s']} requests/s; the server as started by "
                           f"default ({worker_note(runtime_note)}), the bare endpoint in one process; {busy}"),
        common.figure("Server, POST /api/predict: latency p50 / p99", f"{ours['p50_ms']:.1f} / {ours['p99_ms']:.1f}", "ms",
                      target=f"p99 <= {P99_TARGET_MS:g}", met=ours["p99_ms"] <= P99_TARGET_MS,
                      note=f"bare endpoint {bare['p50_ms']:.1f} / {bare['p99_ms']:.1f} ms"),
        common.figure("Server: failed or unanswered requests", ours["errors"], "", target="0", met=ours["errors"] == 0,
                      note="; ".join(ours["samples"][:2])),
    ]
    sizes = {"clients": CLIENTS, "canvas_calls": canvas["calls"], "photo_calls": photo["calls"]}
    details = {"canvas": canvas, "canvas_decode_only": decode, "photo": photo, "servers": runs, "runtime": runtime_note,
               "model": model_note,
               "load_average_before": load, "load_average_after": load_after}
    common.record(NAME, quick=quick, sizes=sizes, figures=figures, details=details, started=started)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Server: requests per second and latency of ``POST /api/predict`` under 8 concurrent clients.

``handwritten serve MODEL --port <free>`` runs in a subprocess on 127.0.0.1; 8 client threads,
each on its own keep-alive connection, post PNG files (test images drawn dark on light at
112x112) as raw bodies until a fixed number of requests is sent or a time limit passes.
Latency is measured per request in the client, from sending to the parsed JSON answer.
The clients share the 2 cores with the server, as a load test on one machine does.

    python benchmarks/bench_server.py [--quick]
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import common

NAME = "server"
CLIENTS = 8
START_TIMEOUT_S = 120


def _wait_ready(proc: subprocess.Popen, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"handwritten serve exited with {proc.returncode} before answering:\n"
                               f"{proc.stderr.read()[-3000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"handwritten serve did not answer /healthz within {START_TIMEOUT_S} s")


def _client(port: int, bodies: list[bytes], budget: dict, lock: threading.Lock, out: list, errors: list) -> None:
    """Post images until the shared request budget or the deadline runs out."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    i = 0
    while True:
        with lock:
            if budget["left"] <= 0 or time.monotonic() > budget["deadline"]:
                break
            budget["left"] -= 1
        body = bodies[i % len(bodies)]
        i += 1
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/api/predict", body=body, headers={"Content-Type": "image/png"})
            response = conn.getresponse()
            payload = response.read()
            elapsed = time.perf_counter() - t0
            if response.status != 200 or "character" not in json.loads(payload):
                errors.append(f"HTTP {response.status}: {payload[:200]!r}")
            else:
                out.append(elapsed)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.close()


def _load(port: int, bodies: list[bytes], requests: int, seconds: float) -> dict:
    budget = {"left": requests, "deadline": time.monotonic() + seconds}
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    threads = [threading.Thread(target=_client, args=(port, bodies, budget, lock, latencies, errors))
               for _ in range(CLIENTS)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"latencies": latencies, "errors": errors, "seconds": wall}


def main() -> int:
    args = common.parse_args(__doc__.splitlines()[0], lambda p: p.add_argument(
        "--model", help="serve this model instead of training a model_2 (default: %(default)s)"))
    started = time.perf_counter()
    quick = args.quick
    requests = 300 if quick else 3000
    limit_s = 30 if quick else 120

    model_path, model_note = common.benchmark_model(quick, args.model)
    data, which = common.training_data()
    from io import BytesIO

    from PIL import Image

    from handwritten.emnist import load

    images = load(data).x_test[:100]
    bodies = []
    for image in images:
        buffer = BytesIO()
        Image.fromarray(255 - image).resize((112, 112), Image.BILINEAR).save(buffer, format="PNG")
        bodies.append(buffer.getvalue())

    port = common.free_port()
    cmd = [sys.executable, "-m", "handwritten", "serve", str(model_path), "--host", "127.0.0.1",
           "--port", str(port), "--quiet"]
    proc = subprocess.Popen(cmd, env=common.handwritten_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait_ready(proc, port)
        _load(port, bodies, 4 * CLIENTS, 30)  # warm: the first requests build the model's graph
        run = _load(port, bodies, requests, limit_s)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    done = len(run["latencies"])
    if not done:
        raise RuntimeError(f"no request succeeded; first errors: {run['errors'][:3]}")
    rps = done / run["seconds"]
    p50 = common.percentile(run["latencies"], 50) * 1000
    p99 = common.percentile(run["latencies"], 99) * 1000
    errors = len(run["errors"])
    figures = [
        common.figure(f"Server, POST /api/predict, {CLIENTS} concurrent clients: requests per second", rps, "requests/s",
                      note=f"p50 {p50:.1f} ms, p99 {p99:.1f} ms; {done} requests in {run['seconds']:.1f} s"),
        common.figure("Server, POST /api/predict: latency p50 / p99", f"{p50:.1f} / {p99:.1f}", "ms"),
        common.figure("Server, POST /api/predict: failed requests", errors, "", target="0", met=errors == 0,
                      note="; ".join(sorted(set(run["errors"]))[:2])),
    ]
    sizes = {"clients": CLIENTS, "requests": requests, "time_limit_s": limit_s, "png_size": [112, 112],
             "distinct_images": len(bodies)}
    details = {
        "data": f"{which}, test images as PNG; {model_note}; served from {Path(model_path).suffix} by handwritten serve",
        "requests_done": done,
        "seconds": run["seconds"],
        "p50_ms": p50,
        "p99_ms": p99,
        "errors": run["errors"][:20],
    }
    common.record(NAME, quick=quick, sizes=sizes, figures=figures, details=details, started=started)
    return 0


if __name__ == "__main__":
    sys.exit(main())

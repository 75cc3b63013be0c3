"""Load test for ``handwritten serve``: many prediction requests from concurrent clients.

Sends ``--requests`` POSTs of small PNG drawings from ``--concurrency`` client threads, each
with its own keep-alive connection, stopping early at ``--time-limit``; prints one JSON object
with the request rate and latency percentiles. Exit status 1 if any request failed or not
all were sent in time.

    python benchmarks/server_load.py --url http://127.0.0.1:8000
    python benchmarks/server_load.py --model demo/model_2.keras   # starts a server itself

Only the standard library and Pillow: it runs from any environment that can draw a PNG.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from urllib.parse import urlsplit

# Characters drawn for the requests, as polylines on a 100x100 sheet.
GLYPHS = {
    "A": [[(20, 90), (50, 10), (80, 90)], [(32, 60), (68, 60)]],
    "1": [[(35, 25), (52, 10), (52, 90)]],
    "7": [[(20, 12), (80, 12), (40, 90)]],
    "L": [[(30, 10), (30, 90), (75, 90)]],
}


def drawings(size: int = 280) -> list[bytes]:
    """One PNG per glyph, the size of the web page's canvas, dark ink on white."""
    from PIL import Image, ImageDraw

    out = []
    for strokes in GLYPHS.values():
        image = Image.new("L", (size, size), 255)
        pen = ImageDraw.Draw(image)
        for line in strokes:
            pen.line([(x * size / 100, y * size / 100) for x, y in line], fill=0, width=size // 16, joint="curve")
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def percentile(sorted_values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation, as numpy's default does."""
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def _send(host: str, port: int, endpoint: str, bodies: list[bytes], requests: int, concurrency: int,
          time_limit: float) -> tuple[dict, list[float], float]:
    """POST up to ``requests`` bodies in turn from ``concurrency`` threads, each on its own keep-alive
    connection, until all are sent or ``time_limit`` s have passed.

    Returns the tally (errors, answers by HTTP status, the first few error messages), the
    latency of every answered request in s, and the seconds it took.
    """
    lock = threading.Lock()
    state = {"next": 0, "errors": 0, "statuses": {}, "samples": []}
    latencies: list[float] = []
    deadline = time.monotonic() + time_limit

    def take() -> int | None:
        with lock:
            if state["next"] >= requests or time.monotonic() > deadline:
                return None
            state["next"] += 1
            return state["next"] - 1

    def fail(what: str) -> None:
        with lock:
            state["errors"] += 1
            if len(state["samples"]) < 5:
                state["samples"].append(what)

    def client() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=60)
        while (i := take()) is not None:
            body = bodies[i % len(bodies)]
            start = time.perf_counter()
            try:
                conn.request("POST", endpoint, body=body, headers={"Content-Type": "image/png"})
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                fail(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=60)
                continue
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                state["statuses"][response.status] = state["statuses"].get(response.status, 0) + 1
            if response.status != 200:
                fail(f"HTTP {response.status}: {data[:200].decode(errors='replace')}")
        conn.close()

    return state, latencies, _run_clients(client, concurrency)


def _run_clients(client, concurrency: int) -> float:
    """Run ``client`` in ``concurrency`` threads at once; the seconds until the last one is done."""
    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def run_load(url: str, requests: int, concurrency: int, time_limit: float, endpoint: str = "/api/predict",
             keep_latencies: bool = False) -> dict:
    """Send ``requests`` POSTs with ``concurrency`` clients; the figures as a dict (with every latency in s if asked)."""
    parts = urlsplit(url)
    bodies = drawings()
    state, latencies, seconds = _send(parts.hostname, parts.port or 80, endpoint, bodies, requests, concurrency,
                                      time_limit)
    latencies.sort()
    done = len(latencies)
    return {
        "url": url.rstrip("/") + endpoint,
        "requested": requests,
        "completed": done,
        "errors": state["errors"],
        "statuses": {str(k): v for k, v in sorted(state["statuses"].items())},
        "error_samples": state["samples"],
        "concurrency": concurrency,
        "image": f"{len(bodies)} PNG drawings of 280x280, {min(map(len, bodies))}-{max(map(len, bodies))} bytes",
        "seconds": round(seconds, 3),
        "requests_per_s": round(done / seconds, 1) if seconds > 0 else None,
        "latency_ms": {
            "p50": round(1000 * percentile(latencies, 50), 2),
            "p90": round(1000 * percentile(latencies, 90), 2),
            "p99": round(1000 * percentile(latencies, 99), 2),
            "max": round(1000 * latencies[-1], 2) if latencies else None,
        },
        **({"latencies": latencies} if keep_latencies else {}),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"server_load: the server exited with status {process.returncode} before answering")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    raise SystemExit(f"server_load: {url} did not answer /healthz within {timeout:g} s")


def start_server(model: str, port: int, log) -> subprocess.Popen:
    """``handwritten serve MODEL`` on 127.0.0.1:port in its own process."""
    cmd = [sys.executable, "-m", "handwritten", "serve", model, "--port", str(port), "--quiet"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="a running server, e.g. http://127.0.0.1:8000")
    where.add_argument("--model", help="start 'handwritten serve MODEL' on a free 127.0.0.1 port and stop it afterwards")
    p.add_argument("--requests", type=int, default=2000, help="requests to send (default: %(default)s)")
    p.add_argument("--concurrency", type=int, default=8, help="clients sending at once (default: %(default)s)")
    p.add_argument("--time-limit", type=float, default=300.0, help="stop sending after this many seconds (default: %(default)s)")
    p.add_argument("--endpoint", default="/api/predict", choices=["/api/predict", "/api/predict/line"],
                   help="what to call (default: %(default)s)")
    p.add_argument("--start-timeout", type=float, default=180.0, help="seconds to wait for the server to answer (default: %(default)s)")
    p.add_argument("--out", help="also write the JSON to this file (default: %(default)s)")
    args = p.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1:
        p.error("--requests and --concurrency must be at least 1")

    process = None
    url = args.url.rstrip("/") if args.url else f"http://127.0.0.1:{free_port()}"
    try:
        if args.model:
            process = start_server(args.model, urlsplit(url).port, subprocess.DEVNULL)
        wait_until_up(url, process, args.start_timeout)
        # Figures from a busy machine are not comparable with those from an idle one.
        machine = {"cpus": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2), "platform": sys.platform}
        # One request first, so model warm-up (graph tracing) is not counted as latency.
        warm = run_load(url, 1, 1, args.time_limit, args.endpoint)
        result = run_load(url, args.requests, args.concurrency, args.time_limit, args.endpoint)
        result["warm_up_ms"] = warm["latency_ms"]["max"]
        result["errors"] += warm["errors"]
        result["machine"] = machine
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0 if result["errors"] == 0 and result["completed"] == args.requests else 1


if __name__ == "__main__":
    sys.exit(main())

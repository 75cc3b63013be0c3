"""Server: requests per second and latency of ``POST /api/predict`` under 8 concurrent clients.

``handwritten serve MODEL --port <free>`` runs in a subprocess on 127.0.0.1; the load comes from
``server_load.py`` (the server's own load test): 8 client threads, each on its own keep-alive
connection, post PNG drawings the size of the web page's canvas (280x280, dark on white) until
a fixed number of requests is sent or a time limit passes. Latency is measured per request
in the client, from sending to the whole answer. The clients share the CPU with the server,
as a load test on one machine does.

    python benchmarks/bench_server.py [--quick] [--model PATH]
"""

from __future__ import annotations

import subprocess
import sys
import time

import common
import server_load

NAME = "server"
CLIENTS = 8
START_TIMEOUT_S = 180


def main() -> int:
    args = common.parse_args(__doc__.splitlines()[0], lambda p: p.add_argument(
        "--model", help="serve this model instead of this run's model_2 (default: %(default)s)"))
    started = time.perf_counter()
    quick = args.quick
    requests = 300 if quick else 1000
    limit_s = 30 if quick else 120

    model_path, model_note = common.benchmark_model(quick, args.model)
    port = common.free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "handwritten", "serve", str(model_path), "--host", "127.0.0.1",
           "--port", str(port), "--quiet"]
    proc = subprocess.Popen(cmd, env=common.handwritten_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        server_load.wait_until_up(url, proc, START_TIMEOUT_S)
        server_load.run_load(url, 4 * CLIENTS, CLIENTS, 60)  # warm: the first requests build the model's graph
        run = server_load.run_load(url, requests, CLIENTS, limit_s)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    if not run["completed"]:
        raise RuntimeError(f"no request was answered; first errors: {run['error_samples']}")
    latency = run["latency_ms"]
    failed = run["errors"] + (run["requested"] - run["completed"])  # unanswered within the time limit count too
    figures = [
        common.figure(f"Server, POST /api/predict, {CLIENTS} concurrent clients: requests per second",
                      run["requests_per_s"], "requests/s",
                      note=f"{run['completed']} requests in {run['seconds']:.1f} s"),
        common.figure(f"Server, POST /api/predict, {CLIENTS} concurrent clients: latency p50 / p99",
                      f"{latency['p50']:.1f} / {latency['p99']:.1f}", "ms", note=f"max {latency['max']:.1f} ms"),
        common.figure("Server, POST /api/predict: failed or unanswered requests", failed, "", target="0",
                      met=failed == 0, note="; ".join(run["error_samples"][:2])),
    ]
    sizes = {"clients": CLIENTS, "requests": requests, "time_limit_s": limit_s, "images": run["image"]}
    details = {"data": f"PNG drawings from server_load.py; {model_note}; served from {model_path.suffix} "
                       "by handwritten serve",
               "load": run}
    common.record(NAME, quick=quick, sizes=sizes, figures=figures, details=details, started=started)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``handwritten serve`` as users run it: a uvicorn server in its own process on 127.0.0.1.

A second process (benchmarks/server_load.py) sends a few thousand prediction requests from
concurrent clients; the test asserts only that none failed. Its figures (requests per second,
p50/p99 latency) are printed, and belong in benchmarks, not in assertions.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOAD = ROOT / "benchmarks" / "server_load.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read()


def post(url: str, body: bytes, timeout: float = 30) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "image/png"}, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as r:
        return r.status, json.loads(r.read())


def serve(*args: str, log: Path) -> subprocess.Popen:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    with open(log, "w") as f:
        return subprocess.Popen([sys.executable, "-m", "handwritten", "serve", *args], stdout=f, stderr=subprocess.STDOUT, env=env)


def wait_until_served(process: subprocess.Popen, url: str, log: Path, workers: int) -> None:
    """Until /healthz answers and every worker process has logged that it started; fails the test otherwise.

    /healthz answers as soon as one worker is up; the others may still be loading their model.
    """
    deadline = time.monotonic() + 180  # TensorFlow's import is slow on a busy machine
    while True:
        if process.poll() is not None:
            pytest.fail(f"handwritten serve exited with status {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if get(url + "/healthz", timeout=2)[0] == 200 and log.read_text().count("Application startup complete") == workers:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"handwritten serve did not answer with {workers} workers within 180 s:\n{log.read_text()[-3000:]}")
        time.sleep(0.25)


@pytest.fixture(scope="module")
def server(trained_model, tmp_path_factory):
    """``handwritten serve`` on a free port, two workers; its URL. Stopped when the module's tests are done."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    process = serve(str(trained_model), "--port", str(port), "--quiet", "--workers", "2", log=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_served(process, url, log, workers=2)
        yield url, log
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    assert process.returncode in (0, -15), log.read_text()[-3000:]  # a clean shutdown on SIGTERM


def drawing() -> bytes:
    sys.path.insert(0, str(LOAD.parent))
    try:
        from server_load import drawings
    finally:
        sys.path.remove(str(LOAD.parent))
    return drawings()[0]


def test_serves_page_and_api_on_localhost(server):
    server, log = server
    status, page = get(server + "/")
    assert status == 200 and b'id="canvas"' in page
    status, body = post(server + "/api/predict?top=3", drawing())
    assert status == 200 and len(body["top"]) == 3 and body["input_png"]
    info = json.loads(get(server + "/api/model")[1])
    assert body["character"] in info["mapping"]
    # Two processes answer, side by side, each with its own copy of the model.
    text = log.read_text()
    assert "2 worker processes" in text and text.count("Started server process") == 2, text[-3000:]


@pytest.mark.slow
def test_load_from_a_second_process_has_no_errors(server):
    server, _ = server
    cmd = [sys.executable, str(LOAD), "--url", server, "--requests", "2000", "--concurrency", "8", "--time-limit", "240"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    result = json.loads(run.stdout)
    print(json.dumps(result))  # the figures, for the record (pytest -s or -rA shows them)
    assert result["errors"] == 0, result["error_samples"]
    assert result["completed"] == 2000 and result["statuses"] == {"200": 2000}
    assert run.returncode == 0, run.stderr
    # The server is still healthy afterwards.
    assert get(server + "/healthz")[0] == 200


def test_a_stalled_upload_does_not_stall_other_requests(server):
    server, _ = server
    port = int(server.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as stalled:
        # Promise 100 kB, send a few bytes, and go quiet while others are served.
        stalled.sendall(
            b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
            b"Content-Length: 100000\r\n\r\n\x89PNG\r\n"
        )
        for _ in range(3):
            status, body = post(server + "/api/predict", drawing(), timeout=30)
            assert status == 200 and body["character"]
        assert get(server + "/healthz")[0] == 200


def test_a_client_trickling_its_headers_is_dropped(server):
    server, _ = server
    port = int(server.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as slow:
        slow.settimeout(1.0)  # one header line a second, as long as the server keeps listening
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        start, closed = time.monotonic(), False
        for k in range(30):
            try:
                slow.sendall(f"X-Slow-{k}: 1\r\n".encode())
                closed = slow.recv(1024) == b""
            except socket.timeout:
                continue
            except OSError:  # reset or broken pipe: closed as well
                closed = True
            if closed:
                break
        assert closed, "the connection was still open after 30 s of trickled headers"
        assert time.monotonic() - start < 20  # dropped after 10 s
    assert get(server + "/healthz")[0] == 200


def test_requests_for_another_host_name_get_400(server):
    server, _ = server
    request = urllib.request.Request(server + "/healthz", headers={"Host": "evil.example"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=10)
    assert err.value.code == 400 and "not served here" in json.loads(err.value.read())["error"]
    assert get(server + "/healthz")[0] == 200  # Host: 127.0.0.1:PORT
    assert get(server.replace("127.0.0.1", "localhost") + "/healthz")[0] == 200


@pytest.mark.slow
def test_sigterm_stops_the_server_promptly_with_requests_in_flight(trained_model, tmp_path):
    import threading

    from test_images import dot_grid

    port = free_port()
    log = tmp_path / "serve.log"
    process = serve(str(trained_model), "--port", str(port), "--quiet", "--workers", "2", log=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_served(process, url, log, workers=2)
        answers = []
        line = threading.Thread(target=lambda: answers.append(_status(url + "/api/predict/line", dot_grid(59))), daemon=True)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as stalled:
            # An upload that stops half-way (the server would wait 30 s for the rest), and a sheet of dots.
            stalled.sendall(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                            b"Content-Length: 100000\r\n\r\n\x89PNG\r\n")
            line.start()
            line.join(10)  # answered at once now; it used to take minutes of a core
            start = time.monotonic()
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pytest.fail(f"still running 15 s after SIGTERM:\n{log.read_text()[-3000:]}")
            assert time.monotonic() - start < 10
        assert answers == [422]  # too many separate marks
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode in (0, -15), log.read_text()[-3000:]


def _status(url: str, body: bytes) -> int:
    try:
        return post(url, body, timeout=60)[0]
    except urllib.error.HTTPError as exc:
        return exc.code


def test_serve_reports_bad_arguments_without_a_traceback(tmp_path):
    for args, words in (
        ([str(tmp_path / "missing.keras")], "model file not found"),
        ([str(tmp_path / "model.txt")], "must end in"),
        ([str(tmp_path / "missing.keras"), "--port", "70000"], "--port 70000"),
        ([str(tmp_path / "missing.keras"), "--max-mb", "0"], "must be a number in (0"),
        ([str(tmp_path / "missing.keras"), "--allow-host", "http://evil.example"], "--allow-host 'http://evil.example'"),
        ([str(tmp_path / "missing.keras"), "--workers", "0"], "--workers 0: give a number of processes from 1 to 64"),
        ([str(tmp_path / "missing.keras"), "--workers", "2", "--collect", str(tmp_path)], "Teach mode (--collect) runs in one process"),
    ):
        run = subprocess.run(
            [sys.executable, "-m", "handwritten", "serve", *args], capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 2, run.stderr
        assert words in run.stderr and "handwritten serve: error:" in run.stderr
        assert "Traceback" not in run.stderr


def test_serve_help_shows_defaults():
    env = dict(os.environ, COLUMNS="200")  # no line breaks inside a default
    run = subprocess.run([sys.executable, "-m", "handwritten", "serve", "--help"], capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 0
    for words in ("--host", "(default: 127.0.0.1)", "(default: 8000)", "(default: 10.0)", "(default: 20.0)"):
        assert words in run.stdout


def test_worker_sockets_share_a_port_and_refuse_one_taken():
    import asyncio

    from handwritten.errors import HandwrittenError
    from handwritten.serve_cli import listening_sockets

    socks = listening_sockets("127.0.0.1", 0, 2)
    try:
        port = socks[0].getsockname()[1]
        assert [s.getsockname()[1] for s in socks] == [port, port]
        # Made as TCP sockets, so asyncio turns Nagle's algorithm off on their connections (an
        # answer otherwise waits for the client's delayed ACK, about 40 ms).
        assert all(s.proto == socket.IPPROTO_TCP for s in socks)

        async def nodelay_of_a_connection() -> int:
            seen = asyncio.get_running_loop().create_future()

            def accepted(reader, writer):
                sock = writer.get_extra_info("socket")
                seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                writer.close()

            servers = [await asyncio.start_server(accepted, sock=s) for s in socks]  # the kernel picks one
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                value = await asyncio.wait_for(seen, 5)
            for server in servers:
                server.close()
            return value

        assert asyncio.run(nodelay_of_a_connection()) != 0
    finally:
        for s in socks:
            s.close()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(HandwrittenError, match=rf"cannot listen on 127.0.0.1:{port}: Address already in use"):
            listening_sockets("127.0.0.1", port, 2)


def test_workers_default_to_the_cores_and_to_one_where_a_port_cannot_be_shared(monkeypatch):
    from handwritten.cli import build_parser
    from handwritten.errors import HandwrittenError
    from handwritten.serve_cli import MAX_DEFAULT_WORKERS, app_settings, default_workers

    assert 1 <= default_workers() <= min(MAX_DEFAULT_WORKERS, len(os.sched_getaffinity(0)))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    assert default_workers() == MAX_DEFAULT_WORKERS
    monkeypatch.delattr(socket, "SO_REUSEPORT")
    assert default_workers() == 1
    with pytest.raises(HandwrittenError, match="--workers 2: this system cannot share a port"):
        app_settings(build_parser().parse_args(["serve", "m.keras", "--workers", "2"]))
    assert app_settings(build_parser().parse_args(["serve", "m.keras", "--workers", "1"]))["model"] == "m.keras"

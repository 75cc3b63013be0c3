"""The HTTP API given bad requests: each answered with the right status and a JSON error saying why.

Empty, truncated and non-image bodies, wrong content types, bodies over the byte or pixel limit,
malformed multipart, bad query parameters, a blank drawing, a body that stops arriving (408), a sheet
of dots (422), work not done in time (503), a flood of uploads, Host headers of other sites, headers
over the limit (431), and unknown paths and methods. As in test_server.py, everything runs in-process
against the ASGI app with the real Recognizer and the model trained on the offline sample.
"""

from __future__ import annotations

import asyncio
import json
import struct
import zlib

import pytest
from PIL import Image

from handwritten.server import create_app
from test_server import assert_error, draw, encode

# Starlette's test client asks for a successor of httpx that the project does not use.
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


def png_header(width: int, height: int) -> bytes:
    """The start of a PNG claiming ``width`` x ``height`` pixels, with almost no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    idat = b"IDAT" + zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + b"".join(struct.pack(">I", len(c) - 4) + c + struct.pack(">I", zlib.crc32(c)) for c in (chunk, idat))


@pytest.fixture(scope="session")
def small_client(recognizer):
    """An app with tight limits, to test them with small images."""
    from fastapi.testclient import TestClient

    with TestClient(create_app(recognizer, max_bytes=2000, max_pixels=100 * 100, allowed_hosts=["testserver"])) as c:
        yield c


# --- bad input -----------------------------------------------------------------------------


def test_empty_body(client):
    assert_error(client.post("/api/predict", content=b""), 400, "empty body")
    assert_error(client.post("/api/predict/line", content=b"", headers={"content-type": "image/png"}), 400, "empty body")


def test_not_an_image(client):
    assert_error(client.post("/api/predict", content=b"hello, world"), 400, "not an image", "12 bytes")
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"  # Pillow could open it with Ghostscript
    assert_error(client.post("/api/predict", content=eps, headers={"content-type": "image/eps"}), 400, "not an image")


def test_truncated_image(client):
    data = encode(draw("A").resize((400, 400)))
    assert_error(client.post("/api/predict", content=data[: len(data) // 2]), 400, "truncated")
    jpeg = encode(draw("A", mode="RGB").resize((400, 400)), "JPEG")
    assert_error(client.post("/api/predict/line", content=jpeg[: len(jpeg) // 2]), 400, "JPEG")


@pytest.mark.parametrize("ctype", ["text/plain", "application/json", "application/x-www-form-urlencoded"])
def test_wrong_content_type(client, ctype):
    r = client.post("/api/predict", content=encode(draw("A")), headers={"content-type": ctype})
    assert_error(r, 415, ctype, "image/png", "multipart")


def test_too_many_bytes(small_client):
    big = encode(Image.effect_noise((90, 90), 64).convert("L"))  # noise does not compress: > 2000 bytes
    assert len(big) > 2000
    assert_error(small_client.post("/api/predict", content=big), 413, "2000 bytes")
    # Without a Content-Length the body is read in chunks and cut off at the limit.
    chunks = (big[i : i + 500] for i in range(0, len(big), 500))
    assert_error(small_client.post("/api/predict", content=chunks), 413, "2000 bytes")
    assert_error(small_client.post("/api/predict", files={"file": ("noise.png", big, "image/png")}), 413, "2000 bytes")


def test_too_many_pixels(small_client, client):
    assert_error(small_client.post("/api/predict", content=encode(Image.new("L", (101, 100), 255))), 413, "megapixels")
    # 100000 x 100000 claimed in a few bytes: refused from the header, before any decoding.
    assert_error(client.post("/api/predict", content=png_header(100_000, 100_000)), 413, "too large")
    assert_error(client.post("/api/predict", content=png_header(2000, 2000)), 400, "truncated")


def test_bad_multipart(client):
    r = client.post("/api/predict", files={"file": ("a.png", b"", "image/png")})
    assert_error(r, 400, "empty body")
    r = client.post("/api/predict", data={"name": "x"}, files={"other": ("a.txt", b"x", "text/plain")})
    assert_error(r, 400, "not an image")
    r = client.post("/api/predict", content=b"--b\r\nbroken", headers={"content-type": "multipart/form-data"})
    assert_error(r, 400, "multipart")
    # A form with fields but no file part.
    body = b'--XX\r\nContent-Disposition: form-data; name="name"\r\n\r\nvalue\r\n--XX--\r\n'
    r = client.post("/api/predict", content=body, headers={"content-type": "multipart/form-data; boundary=XX"})
    assert_error(r, 422, "field 'file'")


@pytest.mark.parametrize("query,word", [("top=0", "greater than"), ("top=63", "less than"), ("top=many", "integer")])
def test_bad_query(client, query, word):
    assert_error(client.post(f"/api/predict?{query}", content=encode(draw("A"))), 422, "top", word)


@pytest.mark.parametrize("path", ["/api/predict", "/api/predict/line"])
@pytest.mark.parametrize("query,words", [("line=1", ["unknown query parameter 'line'", "takes: top, charset"]),
                                         ("top=2&Charset=digits", ["'Charset'"]),
                                         ("charset=digits&charset=upper", ["'charset' given 2 times"]),
                                         ("top=1&top=3", ["'top' given 2 times"])])
def test_unknown_or_repeated_query_parameters_are_refused_not_ignored(client, path, query, words):
    """Dropped in silence, ?line=1 on /api/predict would read one character as if asked to."""
    assert_error(client.post(f"{path}?{query}", content=encode(draw("A"))), 422, *words)


def test_blank_image_is_answered_not_a_character(client):
    r = client.post("/api/predict", content=encode(Image.new("L", (50, 50), 255)))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["character"] is None and body["probability"] is None and body["unsure"] is True
    assert "no ink" in body["reason"] and body["input_png"] is None
    r = client.post("/api/predict/line", content=encode(Image.new("L", (200, 50), 255)))
    assert r.status_code in (200, 422), r.text
    if r.status_code == 200:
        assert r.json() == {"text": "", "characters": []}


def test_a_body_that_stops_arriving_gets_408(recognizer):
    app = create_app(recognizer, read_timeout=0.5)
    sent = []

    parts = [{"type": "http.request", "body": b"\x89PNG\r\n", "more_body": True}]

    async def receive():
        if parts:
            return parts.pop()
        await asyncio.sleep(3600)  # the client has gone quiet

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/api/predict", "raw_path": b"/api/predict", "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"image/png"), (b"content-length", b"5000")],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
    }
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 20))
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 408
    body = b"".join(m.get("body", b"") for m in sent[1:])
    assert "not received within 0.5 s" in json.loads(body)["error"]


def test_a_sheet_of_dots_is_refused_at_once(client):
    import time

    from test_images import dot_grid

    data = dot_grid(59)  # 1.5 kB of 3481 dots: the line endpoint took minutes of a core on it
    start = time.monotonic()
    r = client.post("/api/predict/line", content=data, headers={"content-type": "image/png"})
    assert_error(r, 422, "too many separate marks for a line: 3481 (at most 500)")
    # One character: not a character, answered as fast, not an error.
    r = client.post("/api/predict", content=data)
    assert r.status_code == 200 and r.json()["character"] is None and "noise" in r.json()["reason"]
    assert time.monotonic() - start < 10
    assert client.get("/healthz").status_code == 200


def test_an_image_not_ready_in_time_gets_503(recognizer):
    from fastapi.testclient import TestClient

    with TestClient(create_app(recognizer, prepare_timeout=0.001, allowed_hosts=["testserver"])) as c:
        line = encode(draw("17LA17LA"))  # decoding and segmenting it takes far more than 1 ms
        assert_error(c.post("/api/predict/line", content=line), 503, "not read within 0.001 s")
        assert c.get("/healthz").status_code == 200


def test_image_workers_refuse_a_flood_and_skip_cancelled_jobs():
    import threading

    from handwritten.workers import Busy, ImageWorkers

    workers = ImageWorkers(threads=1, max_waiting=1)
    started, release, ran = threading.Event(), threading.Event(), []
    first = workers.submit(lambda: (started.set(), release.wait(10), "first")[2])
    assert started.wait(10)  # the one thread is busy with it
    queued = workers.submit(ran.append, "queued")
    with pytest.raises(Busy, match=r"images waiting to be read: 1 \(at most 1\)"):
        workers.submit(ran.append, "refused")
    assert queued.cancel()  # its request gave up before it started
    release.set()
    assert first.result(10) == "first"
    later = workers.submit(ran.append, "later")
    assert later.result(10) is None
    assert ran == ["later"]


@pytest.mark.parametrize("host,status", [
    ("127.0.0.1:8000", 200), ("localhost", 200), ("LOCALHOST:80", 200), ("[::1]:8000", 200),
    ("evil.example", 400), ("evil.example:8000", 400), ("127.0.0.1.evil.example", 400), ("", 400),
])
def test_only_the_servers_own_host_names_are_answered(recognizer, host, status):
    from fastapi.testclient import TestClient

    with TestClient(create_app(recognizer), base_url="http://127.0.0.1") as c:
        r = c.get("/healthz", headers={"host": host})
        assert r.status_code == status, r.text
        if status == 400:
            assert_error(r, 400, f"host {host!r} is not served here", "--allow-host")
            assert_error(c.post("/api/predict", content=encode(draw("A")), headers={"host": host}), 400, "not served")
    with TestClient(create_app(recognizer, allowed_hosts=["*"])) as c:
        assert c.get("/healthz", headers={"host": "evil.example"}).status_code == 200


def test_headers_over_the_limit_are_answered_431(client):
    from handwritten.server import MAX_HEADER_BYTES

    assert client.get("/healthz", headers={"x-note": "a" * (MAX_HEADER_BYTES - 500)}).status_code == 200
    for big in ({"x-note": "a" * (MAX_HEADER_BYTES + 1)}, {f"x-{i}": "a" * 1000 for i in range(20)}):
        r = client.get("/healthz", headers=big)
        assert_error(r, 431, "the request's headers hold", f"more than the limit of {MAX_HEADER_BYTES:,}")
    assert_error(client.post("/api/predict", content=encode(draw("A")), headers={"x-note": "a" * 100_000}), 431,
                 "headers hold")


def test_served_hosts_follow_the_address_and_allow_host():
    from handwritten.errors import HandwrittenError
    from handwritten.guards import served_hosts

    assert served_hosts("127.0.0.1", []) == ["127.0.0.1", "localhost", "::1"]
    assert served_hosts("0.0.0.0", ["mybox.local"]) == ["0.0.0.0", "127.0.0.1", "localhost", "::1", "mybox.local"]
    assert served_hosts("192.168.1.5", ["[fe80::1]"]) == ["192.168.1.5", "[fe80::1]"]
    assert served_hosts("192.168.1.5", ["a.example", "*"]) == ["*"]
    for bad in ("http://a.example", "a.example:8000", "a/b", "", "a b"):
        with pytest.raises(HandwrittenError, match="--allow-host"):
            served_hosts("127.0.0.1", [bad])


def test_unknown_paths_and_methods_answer_json(client):
    assert_error(client.get("/api/nothing"), 404, "Not Found")
    assert_error(client.get("/api/predict"), 405, "Method Not Allowed")

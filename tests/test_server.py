"""The HTTP API: each endpoint, each kind of bad input, the OpenAPI schema, and a schema fuzz run.

Everything runs in-process against the ASGI app with the real Recognizer and the model trained
on the offline sample; the server under uvicorn is tested in test_load.py.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import struct
import zlib

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from PIL import Image, ImageDraw

from handwritten.server import ModelWorker, create_app

# Starlette's test client asks for a successor of httpx that the project does not use.
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

# Strokes of a few characters on a 100x100 sheet: (x, y) polylines.
GLYPHS = {
    "A": [[(20, 90), (50, 10), (80, 90)], [(32, 60), (68, 60)]],
    "1": [[(35, 25), (52, 10), (52, 90)]],
    "7": [[(20, 12), (80, 12), (40, 90)]],
    "L": [[(30, 10), (30, 90), (75, 90)]],
}


def draw(text: str = "A", *, cell: int = 100, gap: int = 30, mode: str = "L") -> Image.Image:
    """Dark strokes on a white sheet, one 100x100 cell per character, ``gap`` px apart."""
    width = len(text) * cell + (len(text) + 1) * gap
    image = Image.new("L", (width, cell + 2 * gap), 255)
    pen = ImageDraw.Draw(image)
    for i, ch in enumerate(text):
        x0 = gap + i * (cell + gap)
        for line in GLYPHS[ch]:
            pen.line([(x0 + x * cell / 100, gap + y * cell / 100) for x, y in line], fill=0, width=cell // 12, joint="curve")
    return image.convert(mode)


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def png_header(width: int, height: int) -> bytes:
    """The start of a PNG claiming ``width`` x ``height`` pixels, with almost no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    idat = b"IDAT" + zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + b"".join(struct.pack(">I", len(c) - 4) + c + struct.pack(">I", zlib.crc32(c)) for c in (chunk, idat))


@pytest.fixture(scope="session")
def recognizer(trained_model):
    from handwritten.predict import Recognizer

    return Recognizer(trained_model)


@pytest.fixture(scope="session")
def client(recognizer):
    from fastapi.testclient import TestClient

    with TestClient(create_app(recognizer, allowed_hosts=["testserver"])) as c:
        yield c


@pytest.fixture(scope="session")
def small_client(recognizer):
    """An app with tight limits, to test them with small images."""
    from fastapi.testclient import TestClient

    with TestClient(create_app(recognizer, max_bytes=2000, max_pixels=100 * 100, allowed_hosts=["testserver"])) as c:
        yield c


def assert_error(response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    message = response.json()["error"]
    for word in words:
        assert word in message, message


# --- the endpoints -------------------------------------------------------------------------


def test_healthz_and_model_info(client, recognizer):
    info = recognizer.info()
    assert client.get("/healthz").json() == {"status": "ok", "model": info["name"]}
    body = client.get("/api/model").json()
    assert body["classes"] == 62 == len(body["mapping"])
    assert body["params"] == info["params"] > 0
    assert body["name"] == info["name"]
    assert body["test_accuracy"] == info["test_accuracy"]


def test_page_is_served_with_its_assets_and_nothing_external(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for ref in ('id="canvas"', 'id="clear"', 'id="file"', 'id="bars"', 'value="line"', "/static/app.js", "/static/style.css"):
        assert ref in page.text
    texts = [page.text]
    for name, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and kind in r.headers["content-type"]
        texts.append(r.text)
    for text in texts:  # works offline: no address outside the server
        assert "http://" not in text and "https://" not in text and "//cdn" not in text


def test_predict_raw_body_matches_the_recognizer(client, recognizer):
    image = draw("A")
    r = client.post("/api/predict", content=encode(image), headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    body = r.json()
    direct = recognizer.predict([image], top=5)[0]
    assert body["character"] == direct["character"] == body["top"][0]["character"]
    assert body["probability"] == pytest.approx(direct["probability"], abs=1e-6)
    assert [c["character"] for c in body["top"]] == [c for c, _ in direct["top"]]
    assert body["unsure"] == direct["unsure"] == (body["probability"] < 0.5) and "reason" not in direct
    probs = [c["probability"] for c in body["top"]]
    assert len(probs) == 5 and probs == sorted(probs, reverse=True) and 0 <= probs[-1] and sum(probs) <= 1 + 1e-6
    seen = Image.open(io.BytesIO(base64.b64decode(body["input_png"])))
    assert seen.size == (28, 28)
    assert np.array_equal(np.asarray(seen.convert("L")), direct["input"])


@pytest.mark.parametrize("fmt,mode", [("PNG", "RGBA"), ("JPEG", "RGB"), ("MPO", "RGB"), ("GIF", "P"), ("BMP", "L"), ("WEBP", "RGB")])
def test_predict_multipart_upload_in_any_common_format(client, fmt, mode):
    data = encode(draw("7", mode=mode), fmt)
    r = client.post("/api/predict?top=3", files={"file": (f"seven.{fmt.lower()}", data, f"image/{fmt.lower()}")})
    assert r.status_code == 200, r.text
    raw = client.post("/api/predict?top=3", content=data, headers={"content-type": "application/octet-stream"})
    assert r.json() == raw.json()  # the same answer whichever way the image is sent
    assert len(r.json()["top"]) == 3


@pytest.mark.parametrize("top", [1, 62])
def test_predict_top(client, top):
    r = client.post(f"/api/predict?top={top}", content=encode(draw("L")))
    assert r.status_code == 200 and len(r.json()["top"]) == top


def test_predict_line_reads_characters_left_to_right(client, recognizer):
    image = draw("17LA")
    r = client.post("/api/predict/line?top=2", content=encode(image), headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    body = r.json()
    direct = recognizer.read_line(image, top=2)
    assert body["text"] == direct["text"]
    assert body["text"].replace(" ", "") == "".join(c["character"] for c in body["characters"])
    assert len(body["characters"]) == 4
    lefts = [c["box"][0] for c in body["characters"]]
    assert lefts == sorted(lefts)
    for c in body["characters"]:
        x0, y0, x1, y1 = c["box"]
        assert 0 <= x0 < x1 <= image.width and 0 <= y0 < y1 <= image.height
        assert len(c["top"]) == 2 and c["top"][0]["character"] == c["character"]
        assert c["unsure"] == (c["probability"] < 0.5)
    assert [c["unsure"] for c in body["characters"]] == [c["unsure"] for c in direct["characters"]]


def test_unsure_threshold_and_non_characters(trained_model):
    """--min-confidence reaches every answer; a scribble is answered as not a character."""
    from fastapi.testclient import TestClient

    from handwritten.negatives import generate

    with TestClient(create_app(trained_model, min_confidence=1.0, allowed_hosts=["testserver"])) as c:
        info = c.get("/api/model").json()
        assert info["min_confidence"] == 1.0 and info["temperature"] > 0
        body = c.post("/api/predict", content=encode(draw("A"))).json()
        assert body["unsure"] is True and body["character"] is not None and body["reason"] is None
        line = c.post("/api/predict/line", content=encode(draw("17"))).json()
        assert [ch["unsure"] for ch in line["characters"]] == [True, True]
        scribble = dict(generate(count=4, seed=0))["scribble"]
        body = c.post("/api/predict", content=encode(Image.fromarray(scribble))).json()
        assert body["character"] is None and body["unsure"] is True and "scribble" in body["reason"]
        assert len(body["top"]) == 5 and body["input_png"]


def test_predict_charset_keeps_to_it_and_renormalises(client):
    image = encode(draw("1"))  # a 1 is as much an l or an I
    body = client.post("/api/predict?charset=digits&top=62", content=image).json()
    assert body["character"] in "0123456789" and len(body["top"]) == 10
    assert {c["character"] for c in body["top"]} == set("0123456789")
    assert sum(c["probability"] for c in body["top"]) == pytest.approx(1, abs=1e-6)
    body = client.post("/api/predict?charset=AL&top=5", content=image).json()
    assert body["character"] in "AL" and len(body["top"]) == 2


def test_predict_line_charset(client, recognizer):
    image = draw("17LA")
    body = client.post("/api/predict/line?charset=digits", content=encode(image)).json()
    assert len(body["characters"]) == 4 and body["text"].isdigit()
    assert body["text"] == recognizer.read_line(image, charset="digits")["text"]
    for c in body["characters"]:
        assert all(t["character"].isdigit() for t in c["top"])


@pytest.mark.parametrize("path", ["/api/predict", "/api/predict/line"])
@pytest.mark.parametrize("charset,words", [("", ["empty"]), ("digit", ["unknown charset", "digits"]),
                                           ("%2B%C3%A9", ["no class for", "'+' '\u00e9'"])])
def test_bad_charset_is_a_422_naming_it(client, path, charset, words):
    assert_error(client.post(f"{path}?charset={charset}", content=encode(draw("1"))), 422, "charset", *words)


def test_model_worker_batches_give_the_same_answers(recognizer):
    from handwritten.images import preprocess

    framed = [preprocess(draw(ch), recognizer.framing) for ch in "A17L" * 5]
    worker = ModelWorker(recognizer)
    futures = [worker.submit(x) for x in framed]  # queued together: they go to the model in batches
    alone = recognizer.predict_arrays(np.stack(framed), batch_size=1)
    for expected, future in zip(alone, futures):
        np.testing.assert_allclose(future.result(timeout=60), expected, atol=1e-5)


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


# --- the schema and a fuzz run from it -----------------------------------------------------


def test_openapi_describes_every_endpoint_and_its_errors(client):
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert {"/", "/api/predict", "/api/predict/line", "/api/model", "/healthz"} <= set(paths)
    error_ref = "#/components/schemas/ApiError"
    assert set(schema["components"]["schemas"]["ApiError"]["required"]) == {"error"}
    for path in ("/api/predict", "/api/predict/line"):
        op = paths[path]["post"]
        for status in ("400", "413", "415", "422"):
            assert op["responses"][status]["content"]["application/json"]["schema"]["$ref"] == error_ref
        assert {"multipart/form-data", "image/png", "application/octet-stream"} <= set(op["requestBody"]["content"])
        top = next(p for p in op["parameters"] if p["name"] == "top")
        assert top["schema"]["minimum"] == 1 and top["schema"]["maximum"] == 62


@pytest.fixture(scope="session")
def api_schema(recognizer):
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(recognizer, max_bytes=50_000, allowed_hosts=["testserver"]))


@pytest.mark.slow
@pytest.mark.parametrize(
    "method,path", [("POST", "/api/predict"), ("POST", "/api/predict/line"), ("GET", "/api/model"), ("GET", "/healthz"), ("GET", "/")]
)
def test_schema_fuzz_finds_no_server_error(api_schema, method, path):
    from hypothesis import strategies as st
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    # Every answer is documented and nothing causes a 5xx. (Schemathesis's check that any
    # schema-valid body is accepted does not apply: a schema cannot say "a decodable image".)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    operation = api_schema[path][method]
    strategies = [operation.as_strategy(GenerationMode.POSITIVE)]
    if method == "POST":
        # Generated bodies are never images; a real one as well makes the 200 answers checked too.
        png = encode(draw("A"))
        strategies += [operation.as_strategy(GenerationMode.NEGATIVE), operation.as_strategy(body=png, media_type="image/png")]
    statuses = []

    @given(case=st.one_of(*strategies))
    @settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def fuzz(case):
        response = case.call()
        statuses.append(response.status_code)
        case.validate_response(response, checks=checks)

    fuzz()
    assert statuses and max(statuses) < 500

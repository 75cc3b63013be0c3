"""The HTTP API: each endpoint, the OpenAPI schema, and a schema fuzz run.

Everything runs in-process against the ASGI app with the real Recognizer and the model trained
on the offline sample; the server under uvicorn is tested in test_load.py. Bad requests are
checked in test_server_bad_requests.py, with the helpers here; the app's fixtures are in conftest.py.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from PIL import Image, ImageDraw

from handwritten import rejection
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


def test_predict_line_reads_two_lines_of_writing_row_by_row(client, recognizer):
    top, bottom = draw("17LA"), draw("AL1")
    image = Image.new("L", (top.width, top.height + bottom.height), 255)
    image.paste(top, (0, 0))
    image.paste(bottom, (0, top.height))
    body = client.post("/api/predict/line", content=encode(image)).json()
    assert [c["row"] for c in body["characters"]] == [0] * 4 + [1] * 3
    rows = body["text"].split("\n")
    assert [len(r) for r in rows] == [4, 3]
    assert body["text"] == recognizer.read_line(image)["text"]
    assert all(c["box"][3] <= top.height for c in body["characters"][:4])
    assert all(c["box"][1] >= top.height for c in body["characters"][4:])


def test_predict_line_leaves_out_a_blot_and_says_why_a_blot_alone_is_no_writing(client, recognizer):
    image = draw("17LA", gap=130)
    ImageDraw.Draw(image).ellipse((255, 150, 335, 230), fill=0)  # a blot of ink between the 1 and the 7
    body = client.post("/api/predict/line", content=encode(image)).json()
    assert len(body["characters"]) == 4 and body["reason"] is None
    assert body["text"] == recognizer.read_line(image)["text"]
    [blot] = body["ignored"]
    assert blot["reason"] == rejection.REASONS["blob"] and blot["row"] == 0
    assert body["characters"][0]["box"][2] <= blot["box"][0] < blot["box"][2] <= body["characters"][1]["box"][0]

    blot = Image.new("L", (300, 200), 255)
    ImageDraw.Draw(blot).ellipse((100, 50, 200, 150), fill=0)
    body = client.post("/api/predict/line", content=encode(blot)).json()
    assert body["text"] == "" and body["characters"] == [] and len(body["ignored"]) == 1
    assert body["reason"] == rejection.REASONS["blob"]


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

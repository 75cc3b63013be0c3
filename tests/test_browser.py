"""The page in a real browser: headless Chromium driven by Playwright against a local server.

The test draws strokes with the mouse, checks that the page shows what the API answers for
that very drawing (character, the top-5 bars, the 28x28 image), uploads an image, shows an
error, clears, reads a line, and takes a screenshot. Set HANDWRITTEN_SCREENSHOT=path to keep
the screenshot; the README's is made with

    HANDWRITTEN_SCREENSHOT=docs/screenshot.png HANDWRITTEN_SCREENSHOT_MODEL=demo/model_2.keras \
        .venv/bin/python -m pytest tests/test_browser.py

The browser may reach only the local server.
"""

from __future__ import annotations

import base64
import io
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# Strokes in canvas pixels (the character canvas is 280x280, the line canvas 840x240).
A = [[(80, 235), (140, 45), (200, 235)], [(103, 160), (177, 160)]]
LINE = [
    [(60, 70), (95, 40), (95, 200)],  # 1
    [(230, 45), (330, 45), (265, 200)],  # 7
    [(430, 40), (430, 200), (510, 200)],  # L
]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        reason = f"Chromium not found at {CHROMIUM} (make test installs Debian's chromium with apt when run as root)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def collect_dir(tmp_path_factory) -> Path:
    """Where the server started with --collect saves the samples written in Teach mode."""
    return tmp_path_factory.mktemp("collect") / "samples"


@pytest.fixture(scope="module")
def server(request, collect_dir):
    """The app under uvicorn in a thread of this process, on a free 127.0.0.1 port.

    It serves the test model, or HANDWRITTEN_SCREENSHOT_MODEL when set (for the README's
    screenshot, a model that had more training than the test model's one short epoch).
    """
    import uvicorn

    from handwritten.server import create_app

    model = os.environ.get("HANDWRITTEN_SCREENSHOT_MODEL") or request.getfixturevalue("trained_model")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(create_app(model, collect=collect_dir), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def page(browser, server):
    page = browser.new_page(viewport={"width": 1000, "height": 600})
    problems, outside = [], []
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))

    def only_local(route):
        if route.request.url.startswith(server + "/") or route.request.url.startswith("data:"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(server + "/")
    wait_for(page, "document.querySelector('#model').textContent.startsWith('model ')")
    yield page
    page.close()
    assert not outside, f"the page tried to reach {outside}"
    assert not [p for p in problems if "status of 4" not in p], problems  # 4xx answers are tested on purpose


def wait_for(page, condition: str, timeout: float = 30) -> None:
    """Poll a JavaScript condition. (Playwright's wait_for_function evaluates a string, which
    the page's Content-Security-Policy forbids; it stays on, so a page breaking it fails.)"""
    deadline = time.monotonic() + timeout
    while not page.evaluate(f"() => Boolean({condition})"):
        assert time.monotonic() < deadline, f"timed out waiting for {condition}"
        page.wait_for_timeout(50)


def strokes(page, lines) -> None:
    box = page.locator("#canvas").bounding_box()
    sx, sy = box["width"] / page.evaluate("canvas.width"), box["height"] / page.evaluate("canvas.height")
    for line in lines:
        page.mouse.move(box["x"] + line[0][0] * sx, box["y"] + line[0][1] * sy)
        page.mouse.down()
        for x, y in line[1:]:
            page.mouse.move(box["x"] + x * sx, box["y"] + y * sy, steps=12)
        page.mouse.up()


def settle(page) -> None:
    wait_for(page, "document.body.dataset.state === 'idle' && document.body.dataset.answers")


def canvas_png(page) -> bytes:
    url = page.evaluate("canvas.toDataURL('image/png')")
    return base64.b64decode(url.split(",", 1)[1])


def api(server: str, path: str, data: bytes) -> dict:
    import httpx

    r = httpx.post(server + path, content=data, headers={"content-type": "image/png"}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def shown_bars(page) -> list[dict]:
    return page.evaluate(
        """[...document.querySelectorAll('#bars li')].map(li => ({
            character: li.dataset.character, probability: Number(li.dataset.probability),
            fill: li.querySelector('.fill').getBoundingClientRect().width,
            track: li.querySelector('.track').getBoundingClientRect().width}))"""
    )


def check_shows(page, expected: dict) -> None:
    """The page shows ``expected`` (the API's answer): character, five bars, the 28x28 image."""
    assert page.inner_text("#prediction") == expected["character"] + ("?" if expected["unsure"] else "")
    assert page.get_attribute("#prediction", "data-unsure") == str(expected["unsure"]).lower()
    verdict = page.inner_text("#verdict")
    assert verdict.startswith("? ") if expected["unsure"] else verdict == ""
    bars = shown_bars(page)
    assert [b["character"] for b in bars] == [c["character"] for c in expected["top"]]
    assert len(bars) == 5
    for bar, c in zip(bars, expected["top"]):
        assert bar["probability"] == pytest.approx(c["probability"], abs=1e-6)
        assert bar["fill"] / bar["track"] == pytest.approx(max(c["probability"], 2 / bar["track"]), abs=0.02)
    assert page.get_attribute("#seen", "src") == "data:image/png;base64," + expected["input_png"]
    assert page.evaluate("document.querySelector('#seen').naturalWidth") == 28


@pytest.mark.slow
def test_draw_upload_clear_and_read_a_line(page, server, tmp_path):
    # Draw an A with the mouse: the page shows what the API says about this very drawing.
    strokes(page, A)
    settle(page)
    drawn = canvas_png(page)
    ink, paper = Image.open(io.BytesIO(drawn)).convert("L").getextrema()
    assert ink < 40 and paper == 255  # dark ink on white paper
    check_shows(page, api(server, "/api/predict?top=5", drawn))
    shot = tmp_path / "page.png"
    page.screenshot(path=str(shot))
    assert Image.open(shot).size == (1000, 600)
    if os.environ.get("HANDWRITTEN_SCREENSHOT"):
        page.screenshot(path=os.environ["HANDWRITTEN_SCREENSHOT"])

    # Upload an image file: it is sent as it is and the answer shown.
    image = Image.new("L", (120, 160), 255)
    ImageDraw.Draw(image).line([(20, 20), (100, 20), (50, 140)], fill=0, width=12)
    upload = tmp_path / "seven.png"
    image.save(upload)
    page.set_input_files("#file", str(upload))
    answered = int(page.evaluate("document.body.dataset.answers"))
    wait_for(page, f"Number(document.body.dataset.answers) > {answered}")
    settle(page)
    check_shows(page, api(server, "/api/predict?top=5", upload.read_bytes()))

    # Something that is not an image: the server's message is shown, not a stale answer.
    bad = tmp_path / "notes.png"
    bad.write_text("not really a picture")
    page.set_input_files("#file", str(bad))
    wait_for(page, "document.querySelector('#status').classList.contains('error')")
    assert "not an image" in page.inner_text("#status")
    assert page.inner_text("#prediction") == "?" and shown_bars(page) == []

    # Clear: a white canvas and no answer.
    page.click("#clear")
    settle(page)
    assert page.inner_text("#prediction") == "?" and shown_bars(page) == []
    assert page.inner_text("#status") == ""
    assert Image.open(io.BytesIO(canvas_png(page))).convert("L").getextrema() == (255, 255)

    # Line mode: three characters, read left to right as the API reads them.
    page.check('input[value="line"]')
    assert page.evaluate("[canvas.width, canvas.height]") == [840, 240]
    strokes(page, LINE)
    settle(page)
    expected = api(server, "/api/predict/line?top=3", canvas_png(page))
    assert len(expected["characters"]) == 3
    assert page.get_attribute("#text", "data-text") == expected["text"]
    shown = page.evaluate("[...document.querySelectorAll('#chars li')].map(li => li.dataset.character)")
    assert shown == [c["character"] for c in expected["characters"]]


def scribble(cx: float, cy: float, size: float) -> list[list[tuple[float, float]]]:
    """One tangled stroke going round and back across a square of ``size`` px: no character."""
    import math

    return [[(cx + size / 2 * math.sin(2 * math.pi * 6.3 * t / 200 + 0.5) * math.cos(2 * math.pi * 1.7 * t / 200),
              cy + size / 2 * math.sin(2 * math.pi * 9.1 * t / 200)) for t in range(201)]]


@pytest.mark.slow
def test_blank_and_scribbled_canvases_show_not_a_character(page, server, tmp_path):
    # A blank page uploaded: answered, not an error, and shown as no character.
    blank = tmp_path / "blank.png"
    Image.new("L", (280, 280), 255).save(blank)
    page.set_input_files("#file", str(blank))
    settle(page)
    assert "not a character" in page.inner_text("#verdict") and "no ink" in page.inner_text("#verdict")
    assert page.get_attribute("#prediction", "data-unsure") == "true"
    assert page.get_attribute("#prediction", "data-character") == ""
    assert page.inner_text("#status") == "" and page.get_attribute("#seen", "src") is None

    # A scribble drawn with the mouse: not a character, with the reason.
    page.click("#clear")
    strokes(page, scribble(140, 140, 200))
    settle(page)
    expected = api(server, "/api/predict?top=5", canvas_png(page))
    assert expected["character"] is None and expected["unsure"] is True
    assert page.inner_text("#verdict") == f"not a character: {expected['reason']}"
    assert page.inner_text("#prediction") == "\u2014"
    assert page.get_attribute("#prediction", "data-character") == ""

    # The same scribble as a line: no characters, and why.
    page.check('input[value="line"]')
    page.click("#clear")
    strokes(page, scribble(420, 120, 200))
    settle(page)
    expected = api(server, "/api/predict/line?top=3", canvas_png(page))
    assert expected["characters"] == [] and expected["reason"] and len(expected["ignored"]) == 1
    assert page.inner_text("#text") == f"no characters: {expected['reason']}"
    assert page.evaluate("document.querySelectorAll('#chars li').length") == 0
    page.check('input[value="char"]')
@pytest.mark.slow
def test_the_charset_chosen_goes_with_the_request_and_bounds_the_answer(page, server):
    sent = []
    page.on("request", lambda r: "/api/predict" in r.url and sent.append(r.url))
    strokes(page, [[(140, 40), (140, 240)]])  # a bar: a 1, an l or an I
    settle(page)
    assert sent and "charset" not in sent[-1]

    answered = int(page.evaluate("document.body.dataset.answers"))
    page.select_option("#charset", "digits")  # the same drawing, read again
    wait_for(page, f"Number(document.body.dataset.answers) > {answered}")
    settle(page)
    assert "charset=digits" in sent[-1]
    expected = api(server, "/api/predict?top=5&charset=digits", canvas_png(page))
    assert expected["character"].isdigit()
    check_shows(page, expected)
    assert all(b["character"].isdigit() for b in shown_bars(page))

    page.check('input[value="line"]')  # the choice stays for lines
    strokes(page, LINE)
    settle(page)
    assert "/api/predict/line?" in sent[-1] and "charset=digits" in sent[-1]
    assert page.get_attribute("#text", "data-text").isdigit()


def teach_step(page, action) -> None:
    """Run a save or undo and wait for the server's answer."""
    done = int(page.evaluate("Number(document.body.dataset.teachDone || 0)"))
    action()
    wait_for(page, f"Number(document.body.dataset.teachDone || 0) > {done}")


def counts(page) -> dict[str, int]:
    return page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('#teach-counts li')].map(li => [li.dataset.character, "
        "Number(li.dataset.count)]))")


@pytest.mark.slow
def test_teach_mode_draw_save_undo_counts(page, collect_dir):
    wait_for(page, "document.body.dataset.teach === 'ready'")
    assert page.is_visible("#teach-mode") and not page.is_visible("#teach-save")
    page.check('input[value="teach"]')
    assert page.is_visible("#teach-save") and page.is_visible("#teach-counts")
    assert page.get_attribute("#teach-char", "data-character") == "0"  # the model's classes in turn
    assert "handwritten finetune" in page.inner_text("#teach-command")

    # The person chooses what to practise; Enter in the box applies it.
    page.fill("#teach-set", "A7")
    page.press("#teach-set", "Enter")
    assert page.get_attribute("#teach-char", "data-character") == "A"
    assert counts(page) == {"A": 0, "7": 0}

    # Draw an A and press Enter: saved into upper-A/, the count goes up, the next character is asked for.
    strokes(page, A)
    settle(page)
    teach_step(page, lambda: page.keyboard.press("Enter"))
    assert counts(page) == {"A": 1, "7": 0}
    saved = list((collect_dir / "upper-A").glob("*.png"))
    assert len(saved) == 1
    ink, paper = Image.open(saved[0]).convert("L").getextrema()
    assert ink < 40 and paper == 255  # the drawing itself, dark on white
    assert page.get_attribute("#teach-char", "data-character") == "7"
    assert Image.open(io.BytesIO(canvas_png(page))).convert("L").getextrema() == (255, 255)  # a fresh sheet

    # Saving an empty sheet is refused on the page; nothing is sent.
    page.click("#teach-save")
    assert "Write the character first" in page.inner_text("#status")

    # Draw a 7 with the button, then undo it: the file goes, the 7 is asked for again.
    strokes(page, [LINE[1]])
    settle(page)
    teach_step(page, lambda: page.click("#teach-save"))
    assert counts(page) == {"A": 1, "7": 1} and len(list((collect_dir / "7").glob("*.png"))) == 1
    teach_step(page, lambda: page.click("#teach-undo"))
    assert counts(page) == {"A": 1, "7": 0} and not list((collect_dir / "7").glob("*.png"))
    assert page.get_attribute("#teach-char", "data-character") == "7"
    assert "Removed the last sample of 7" in page.inner_text("#status")
    assert page.evaluate("document.body.dataset.samples") == "1"

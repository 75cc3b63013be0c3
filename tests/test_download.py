"""``handwritten download`` against a small EMNIST-like zip served from 127.0.0.1, faults included."""

from __future__ import annotations

import hashlib
import http.server
import io
import re
import threading
import zipfile

import numpy as np
import pytest

from handwritten import emnist
from handwritten.cli import main
from handwritten.download import archive_path, download
from handwritten.errors import DataError
from handwritten.idx import write_idx


def _gz_idx(tmp_path, name, array) -> bytes:
    return write_idx(tmp_path / name, array).read_bytes()


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> bytes:
    """A zip laid out like NIST's gzip.zip with two splits, digits and letters, a few images each."""
    tmp = tmp_path_factory.mktemp("zip")
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for split, labels in (("digits", np.arange(10)), ("letters", np.arange(1, 27))):
            for part, n in (("train", 3), ("test", 1)):
                y = np.tile(labels, n).astype(np.uint8)
                x = rng.integers(0, 256, size=(len(y), 28, 28), dtype=np.uint8)
                zf.writestr(f"gzip/emnist-{split}-{part}-images-idx3-ubyte.gz",
                            _gz_idx(tmp, f"{split}{part}i.gz", x))
                zf.writestr(f"gzip/emnist-{split}-{part}-labels-idx1-ubyte.gz",
                            _gz_idx(tmp, f"{split}{part}l.gz", y))
            offset = 1 if split == "letters" else 0
            mapping = "".join(f"{k + offset} {ord(c)}\n" for k, c in enumerate(emnist.SPLITS[split].mapping))
            zf.writestr(f"gzip/emnist-{split}-mapping.txt", mapping)
    return buf.getvalue()


class Server:
    """Serves ``routes`` (path -> (status, content type, body)); honours Range unless told not to."""

    def __init__(self):
        self.routes: dict[str, tuple[int, str, bytes]] = {}
        self.ranges: list[str | None] = []
        self.honour_range = True
        self.cut_after: int | None = None  # promise the whole body but close after this many bytes
        self.stall_after: int | None = None  # promise the whole body, send this many bytes, then go silent
        self.release = threading.Event()  # ends a stall
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.ranges.append(self.headers.get("Range"))
                status, ctype, body = server.routes.get(self.path, (404, "text/plain", b"not found"))
                start = 0
                rng = self.headers.get("Range")
                if status == 200 and rng and server.honour_range:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.end_headers()
                        return
                    status = 206
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body) - start))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.end_headers()
                payload = body[start:]
                if server.cut_after is not None:
                    payload = payload[:server.cut_after]
                if server.stall_after is not None:
                    self.wfile.write(payload[:server.stall_after])
                    self.wfile.flush()
                    server.release.wait(10)
                    return
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """A cache per test: a downloaded archive is reused by design, and each test wants a fresh start."""
    monkeypatch.setenv("HANDWRITTEN_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def server():
    s = Server()
    yield s
    s.release.set()
    s.httpd.shutdown()
    s.httpd.server_close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_unpacks_only_the_split_and_it_loads(server, archive, tmp_path):
    server.routes["/gzip.zip"] = (200, "application/zip", archive)
    dest = tmp_path / "data"
    folder = download("letters", url=server.base + "/gzip.zip", sha256=_sha(archive), size=len(archive), dest=dest)
    assert folder == dest
    names = sorted(p.name for p in dest.iterdir())
    assert names == sorted([f"emnist-letters-{p}-ubyte.gz" for p in
                            ("train-images-idx3", "train-labels-idx1", "test-images-idx3", "test-labels-idx1")]
                           + ["emnist-letters-mapping.txt"])
    data = emnist.load(dest, "letters")
    assert data.classes == 26 and len(data.x_train) == 78 and data.y_train.min() == 0 and data.y_train.max() == 25
    assert archive_path(server.base + "/gzip.zip").read_bytes() == archive  # kept for other splits
    download("digits", url=server.base + "/gzip.zip", sha256=_sha(archive), dest=dest)
    assert len(server.ranges) == 1  # the second split came from the kept archive, no new request
    assert emnist.load(dest, "digits").classes == 10 and emnist.load(dest, "letters").classes == 26


def test_cli_download_goes_to_the_cache_by_default(server, archive, monkeypatch, capsys):
    from handwritten import download as module
    from handwritten.idx import cache_dir

    server.routes["/gzip.zip"] = (200, "application/zip", archive)
    monkeypatch.setenv("HANDWRITTEN_EMNIST_URL", server.base + "/gzip.zip")
    monkeypatch.setattr(module, "EMNIST_SHA256", _sha(archive))
    monkeypatch.setattr(module, "EMNIST_SIZE", len(archive))
    assert main(["download", "--split", "digits"]) == 0
    out = capsys.readouterr().out
    assert f"EMNIST split digits: files in {cache_dir() / 'emnist'}" in out
    assert emnist.load(None, "digits").folder == cache_dir() / "emnist"


def test_cli_download_checks_the_official_hash(server, archive, monkeypatch, capsys):
    server.routes["/gzip.zip"] = (200, "application/zip", archive)
    monkeypatch.setenv("HANDWRITTEN_EMNIST_URL", server.base + "/gzip.zip")
    assert main(["download", "--split", "digits"]) == 2
    err = capsys.readouterr().err
    assert f"handwritten download: error: {server.base}/gzip.zip: SHA-256 mismatch: expected fb9bb67e" in err
    assert "truncated" in err  # the small zip is far shorter than 561,753,746 bytes


def test_resume_sends_a_range_request(server, archive, tmp_path):
    url = server.base + "/gzip.zip"
    server.routes["/gzip.zip"] = (200, "application/zip", archive)
    part = archive_path(url).with_name("gzip.zip.part")
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(archive[:1000])
    download("digits", url=url, sha256=_sha(archive), dest=tmp_path / "d")
    assert server.ranges == ["bytes=1000-"]
    assert archive_path(url).read_bytes() == archive and not part.exists()
    assert emnist.load(tmp_path / "d", "digits").classes == 10


def test_resume_restarts_when_the_server_ignores_range(server, archive, tmp_path):
    url = server.base + "/gzip.zip"
    server.routes["/gzip.zip"] = (200, "application/zip", archive)
    server.honour_range = False
    part = archive_path(url).with_name("gzip.zip.part")
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(b"x" * 500)  # junk that must not stay in front of the archive
    download("digits", url=url, sha256=_sha(archive), dest=tmp_path / "d")
    assert server.ranges == ["bytes=500-"]
    assert archive_path(url).read_bytes() == archive


def test_interrupted_download_keeps_the_part_and_says_resume(server, archive, tmp_path):
    url = server.base + "/gzip.zip"
    server.routes["/gzip.zip"] = (200, "application/zip", archive)
    server.cut_after = 700
    with pytest.raises(DataError, match=r"stopped after 700 of \d+ bytes; run the command again to resume"):
        download("digits", url=url, sha256=_sha(archive), dest=tmp_path / "d")
    part = archive_path(url).with_name("gzip.zip.part")
    assert part.read_bytes() == archive[:700]
    server.cut_after = None
    download("digits", url=url, sha256=_sha(archive), dest=tmp_path / "d")
    assert server.ranges[-1] == "bytes=700-"


def test_truncated_archive_fails_the_hash_and_says_truncated(server, archive, tmp_path):
    url = server.base + "/gzip.zip"
    server.routes["/gzip.zip"] = (200, "application/zip", archive[: len(archive) // 2])
    with pytest.raises(DataError, match=rf"SHA-256 mismatch.*truncated \({len(archive) // 2} of {len(archive)} bytes\)"):
        download("digits", url=url, sha256=_sha(archive), size=len(archive), dest=tmp_path / "d")
    assert not archive_path(url).exists() and not archive_path(url).with_name("gzip.zip.part").exists()
    assert not (tmp_path / "d").exists()  # nothing unpacked


def test_truncated_archive_without_a_hash_is_not_a_complete_zip(server, archive, tmp_path):
    url = server.base + "/gzip.zip"
    server.routes["/gzip.zip"] = (200, "application/zip", archive[: len(archive) - 100])
    with pytest.raises(DataError, match="not a complete zip archive, truncated or damaged"):
        download("digits", url=url, sha256=None, dest=tmp_path / "d")


def test_tampered_archive_is_deleted_before_unpacking(server, archive, tmp_path):
    url = server.base + "/gzip.zip"
    tampered = bytearray(archive)
    tampered[len(tampered) // 2] ^= 0xFF
    server.routes["/gzip.zip"] = (200, "application/zip", bytes(tampered))
    with pytest.raises(DataError, match=rf"SHA-256 mismatch: expected {_sha(archive)}, got {_sha(bytes(tampered))}"
                                        r"; the partial file .* was deleted"):
        download("digits", url=url, sha256=_sha(archive), size=len(archive), dest=tmp_path / "d")
    assert not archive_path(url).with_name("gzip.zip.part").exists()
    assert not (tmp_path / "d").exists()


def test_html_page_by_content_type(server, tmp_path):
    server.routes["/gzip.zip"] = (200, "text/html; charset=utf-8", b"<html><body>Moved</body></html>")
    with pytest.raises(DataError, match=r"HTML page \(Content-Type text/html; charset=utf-8\), not the zip archive"):
        download("digits", url=server.base + "/gzip.zip", dest=tmp_path / "d")


def test_html_page_by_its_first_bytes(server, tmp_path):
    server.routes["/gzip.zip"] = (200, "application/octet-stream", b"\n<!DOCTYPE html><html>login</html>")
    with pytest.raises(DataError, match="the server sent an HTML page, not the zip archive"):
        download("digits", url=server.base + "/gzip.zip", dest=tmp_path / "d")
    assert not archive_path(server.base + "/gzip.zip").with_name("gzip.zip.part").exists()


def test_not_a_zip(server, tmp_path):
    server.routes["/gzip.zip"] = (200, "application/octet-stream", b"\x1f\x8b\x08 something else")
    with pytest.raises(DataError, match=r"not a zip archive \(it starts with b'\\x1f\\x8b"):
        download("digits", url=server.base + "/gzip.zip", dest=tmp_path / "d")


def test_404(server, tmp_path):
    with pytest.raises(DataError, match=r"/missing.zip: HTTP error 404"):
        download("digits", url=server.base + "/missing.zip", dest=tmp_path / "d")


def test_network_error(tmp_path):
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError, match=rf"127.0.0.1:{port}/gzip.zip: network error"):
        download("digits", url=f"http://127.0.0.1:{port}/gzip.zip", dest=tmp_path / "d")


def test_split_missing_from_the_archive(server, archive, tmp_path):
    server.routes["/gzip.zip"] = (200, "application/zip", archive)
    with pytest.raises(DataError, match="has no emnist-byclass-train-images-idx3-ubyte.gz.* for split byclass"):
        download("byclass", url=server.base + "/gzip.zip", sha256=_sha(archive), dest=tmp_path / "d")


def test_unknown_split_is_refused_before_any_request(server, tmp_path, capsys):
    with pytest.raises(DataError, match="unknown split 'bydigit'; choose one of: byclass, bymerge"):
        download("bydigit", url=server.base + "/gzip.zip", dest=tmp_path / "d")
    with pytest.raises(SystemExit) as exc:
        main(["download", "--split", "bydigit", "--url", server.base + "/gzip.zip"])
    assert exc.value.code == 2 and "invalid choice: 'bydigit'" in capsys.readouterr().err
    assert server.ranges == []


# ---------------------------------------------------------------- URLs and places that cannot work

@pytest.mark.parametrize("url, message", [
    ("{base}/..", "the URL must end in a file name, such as gzip.zip"),
    ("{base}/", "the URL must end in a file name, such as gzip.zip"),
    ("notaurl", r"not a URL to download from \(no scheme\); expected one starting with http://, https://, file://"),
    ("ftp://example.org/gzip.zip", r"not a URL to download from \(scheme 'ftp'\)"),
    ("http:///gzip.zip", "the URL names no host"),
    ("http://[::1/gzip.zip", r"not a valid URL \(Invalid IPv6 URL\)"),
])
def test_url_that_cannot_be_downloaded_from(server, archive, tmp_path, capsys, url, message):
    from handwritten.idx import cache_dir

    cache_dir().mkdir(parents=True, exist_ok=True)  # where "<base>/.." would have pointed
    server.routes["/gzip.zip"] = (200, "application/zip", archive)
    url = url.format(base=server.base)
    assert main(["download", "--split", "digits", "--url", url, "--dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(rf"handwritten download: error: {re.escape(url)}: {message}.*\n", err), err
    assert server.ranges == [] and not (tmp_path / "d").exists()


def test_file_url_that_is_a_folder_or_missing(tmp_path):
    with pytest.raises(DataError, match=rf"file://{tmp_path}: {tmp_path} is a folder, not a file"):
        download("digits", url=f"file://{tmp_path}", sha256=None, dest=tmp_path / "d")
    with pytest.raises(DataError, match=rf"{tmp_path}/gone.zip file not found"):
        download("digits", url=f"file://{tmp_path}/gone.zip", sha256=None, dest=tmp_path / "d")


def test_file_url_downloads(archive, tmp_path):
    (tmp_path / "gzip.zip").write_bytes(archive)
    folder = download("digits", url=f"file://{tmp_path}/gzip.zip", sha256=_sha(archive), dest=tmp_path / "d")
    assert emnist.load(folder, "digits").classes == 10


def test_cache_that_cannot_be_written_names_the_url(server, archive, tmp_path, monkeypatch):
    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("HANDWRITTEN_CACHE", str(blocker))
    server.routes["/gzip.zip"] = (200, "application/zip", archive)
    url = server.base + "/gzip.zip"
    with pytest.raises(DataError, match=rf"{url}: cannot download into {blocker}/downloads \(Not a directory\)"):
        download("digits", url=url, sha256=_sha(archive), dest=tmp_path / "d")
    assert blocker.read_text() == "not a folder"


def test_destination_that_cannot_be_written(server, archive, tmp_path):
    dest = tmp_path / "taken"
    dest.write_text("mine")
    server.routes["/gzip.zip"] = (200, "application/zip", archive)
    with pytest.raises(DataError, match=rf"{dest}: cannot unpack split digits from .*gzip.zip there \(File exists\)"):
        download("digits", url=server.base + "/gzip.zip", sha256=_sha(archive), dest=dest)
    assert dest.read_text() == "mine"


def test_stalled_server_reports_the_bytes_that_arrived(server, archive, tmp_path, monkeypatch):
    from handwritten import download as module

    monkeypatch.setattr(module, "TIMEOUT", 0.5)
    url = server.base + "/gzip.zip"
    server.routes["/gzip.zip"] = (200, "application/zip", archive)
    server.stall_after = 1000
    with pytest.raises(DataError, match=r"network error after 1000 bytes .*; run the command again to resume"):
        download("digits", url=url, sha256=_sha(archive), dest=tmp_path / "d")
    part = archive_path(url).with_name("gzip.zip.part")
    assert part.read_bytes() == archive[:1000]
    server.release.set()
    server.stall_after = None
    download("digits", url=url, sha256=_sha(archive), dest=tmp_path / "d")
    assert server.ranges[-1] == "bytes=1000-"


def test_stall_within_the_first_bytes_is_counted_too(server, archive, tmp_path, monkeypatch):
    from handwritten import download as module

    monkeypatch.setattr(module, "TIMEOUT", 0.5)
    server.routes["/gzip.zip"] = (200, "application/zip", archive)
    server.stall_after = 100  # fewer than the bytes held back to tell a zip from an HTML page
    with pytest.raises(DataError, match=r"network error after 100 bytes"):
        download("digits", url=server.base + "/gzip.zip", sha256=_sha(archive), dest=tmp_path / "d")
    # Too few bytes to tell a zip archive from an HTML page: none of them are kept to resume from.
    assert archive_path(server.base + "/gzip.zip").with_name("gzip.zip.part").read_bytes() == b""

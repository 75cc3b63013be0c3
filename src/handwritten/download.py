"""``handwritten download``: fetch the official EMNIST archive and unpack one split into the cache.

The archive is NIST's ``gzip.zip`` (561,753,746 bytes), which holds every split as
``gzip/emnist-<split>-{train,test}-{images-idx3,labels-idx1}-ubyte.gz`` plus
``gzip/emnist-<split>-mapping.txt``. The download goes to a ``.part`` file that a later run
resumes with an HTTP Range request; the SHA-256 is checked before anything is unpacked; only
the asked-for split is extracted. The standard library's urllib is all it needs.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from handwritten import paths
from handwritten.emnist import DEFAULT_SPLIT, SPLITS, get_split
from handwritten.errors import DataError
from handwritten.idx import cache_dir
from handwritten.paths import check_file, file_problem

EMNIST_URL = "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip"
EMNIST_SIZE = 561_753_746
EMNIST_SHA256 = "fb9bb67e33772a9cc0b895e4ecf36d2cf35be8b709693c3564cea2a019fcda8e"
URL_ENV = "HANDWRITTEN_EMNIST_URL"
CHUNK = 1 << 20
HEAD = 512  # bytes enough to tell a zip archive from an HTML page
SCHEMES = ("http", "https", "file")
TIMEOUT = 60  # seconds without a byte before a stalled connection counts as a network error


def check_url(url: str) -> str:
    """``url`` when it is one this tool downloads from: http, https or file, ending in a file name."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:
        raise DataError(f"{url}: not a valid URL ({exc})") from None
    if parts.scheme not in SCHEMES:
        got = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        raise DataError(f"{url}: not a URL to download from ({got}); expected one starting with "
                        f"{', '.join(s + '://' for s in SCHEMES)}")
    if parts.scheme != "file" and not parts.hostname:
        raise DataError(f"{url}: the URL names no host")
    if parts.path.rsplit("/", 1)[-1] in ("", ".", ".."):
        raise DataError(f"{url}: the URL must end in a file name, such as gzip.zip")
    return url


def archive_path(url: str) -> Path:
    """Where the archive from ``url`` is kept (its ``.part`` file lies beside it until complete)."""
    name = urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1]
    return cache_dir() / "downloads" / name


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _looks_like_html(head: bytes) -> bool:
    start = head.lstrip()[:15].lower()
    return start.startswith((b"<!doctype", b"<html", b"<head", b"<?xml", b"<body"))


def _open(url: str, offset: int):
    """Open ``url`` from byte ``offset``; a clear DataError for HTTP and network errors."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        # Checked first: opening a FIFO blocks, and a folder is not an archive.
        local = urllib.request.url2pathname(parts.path)
        problem = file_problem(local)
        if problem:
            raise DataError(f"{url}: {local} {problem}")
    request = urllib.request.Request(url, headers={"User-Agent": "handwritten"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        return urllib.request.urlopen(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            return None  # nothing after ``offset``: the part file may be complete; the hash check decides
        raise DataError(f"{url}: HTTP error {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(f"{url}: network error: {reason}") from None


def _fetch(url: str, part: Path, progress: bool) -> None:
    """Download ``url`` into ``part``, resuming what is there; raise if it ends short."""
    offset = part.stat().st_size if part.exists() else 0
    response = _open(url, offset)
    if response is None:
        return
    with response:
        if offset and response.status != 206:
            # The server ignored the Range header and sends the whole file: start again.
            offset = 0
        content_type = response.headers.get("Content-Type", "")
        if "text/html" in content_type:
            raise DataError(f"{url}: the server sent an HTML page (Content-Type {content_type}), "
                            "not the zip archive; check the URL")
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        received = _copy(url, response, part, offset, total, progress)
    if total is not None and received < total:
        raise DataError(f"{url}: the download stopped after {received} of {total} bytes; "
                        f"run the command again to resume from {part}")


def _copy(url: str, response, part: Path, offset: int, total: int | None, progress: bool) -> int:
    """Append the response to ``part`` (from ``offset``); return the bytes received, ``offset`` included."""
    from tqdm import tqdm

    # read1 returns what has arrived; read(CHUNK) would wait for a whole chunk and lose the
    # count of what came before a stall.
    read = getattr(response, "read1", response.read)
    received = offset
    head = b""  # a fresh download's first bytes, held back until they show it is a zip archive
    checked = offset > 0
    with open(part, "ab" if offset else "wb") as out, tqdm(
        total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
        desc=part.name.removesuffix(".part"), disable=not progress,
    ) as bar:
        while True:
            try:
                chunk = read(CHUNK)
            except (OSError, http.client.HTTPException) as exc:
                raise DataError(f"{url}: network error after {received} bytes ({exc}); "
                                f"run the command again to resume from {part}") from None
            received += len(chunk)
            bar.update(len(chunk))
            if not checked:
                head += chunk
                if chunk and len(head) < HEAD:
                    continue
                checked = True
                chunk, head = head, b""
                problem = _not_a_zip(chunk) if chunk else None
                if problem:
                    out.close()
                    part.unlink(missing_ok=True)
                    raise DataError(f"{url}: {problem}")
            if not chunk:
                return received
            out.write(chunk)


def _not_a_zip(head: bytes) -> str | None:
    if _looks_like_html(head[:HEAD]):
        return "the server sent an HTML page, not the zip archive; check the URL"
    if not head.startswith(b"PK"):
        return f"the response is not a zip archive (it starts with {head[:8]!r})"
    return None


def _extract(archive: Path, split: str, dest: Path) -> list[Path]:
    """Unpack the split's files from ``archive`` into ``dest``, each file replaced atomically."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.namelist() if Path(m).name.startswith(f"emnist-{split}-")]
            wanted = [f"emnist-{split}-{part}-ubyte.gz" for part in
                      ("train-images-idx3", "train-labels-idx1", "test-images-idx3", "test-labels-idx1")]
            missing = [w for w in wanted if w not in {Path(m).name for m in members}]
            if missing:
                raise DataError(f"{archive}: the archive has no {', '.join(missing)} for split {split}")
            dest.mkdir(parents=True, exist_ok=True)
            written = []
            with tempfile.TemporaryDirectory(dir=dest, prefix=".extract-") as tmp:
                for member in members:
                    target = Path(tmp) / Path(member).name
                    # Reading through zipfile checks each member's CRC.
                    with zf.open(member) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out, CHUNK)
                for member in members:
                    final = dest / Path(member).name
                    os.replace(Path(tmp) / final.name, final)
                    written.append(final)
            return written
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as exc:
        raise DataError(f"{archive}: not a complete zip archive, truncated or damaged ({exc}); "
                        "delete it and download again") from None


def download(split: str = DEFAULT_SPLIT, *, url: str | None = None, sha256: str | None = EMNIST_SHA256,
             size: int | None = EMNIST_SIZE, dest: str | os.PathLike | None = None,
             progress: bool = False) -> Path:
    """Download the EMNIST archive (resuming a partial one), check it, and unpack one split.

    Args:
        split: which split to unpack (byclass, bymerge, balanced, letters, digits, mnist).
        url: where to fetch the archive; default ``$HANDWRITTEN_EMNIST_URL`` or NIST's URL.
        sha256: the archive's expected SHA-256 (``None`` skips the check, for archives
            with no published hash).
        size: the archive's expected size in bytes, used to say "truncated" rather than
            only "wrong hash" (``None``: unknown).
        dest: the folder for the split's files; default ``<cache>/emnist``, where the loader looks.
        progress: show a progress bar on stderr.

    Returns:
        The folder holding the split's files.

    Raises:
        DataError: an unknown split, a URL that is not http, https or file or names no file, a
            network or HTTP error, an HTML page instead of the archive, a wrong hash, a truncated
            or damaged archive, a cache or ``dest`` that cannot be written.
    """
    get_split(split)
    url = check_url(url or os.environ.get(URL_ENV) or EMNIST_URL)
    dest = Path(dest) if dest is not None else cache_dir() / "emnist"
    archive = archive_path(url)
    try:
        if not os.path.lexists(archive):
            _fetch_checked(url, archive, sha256, size, progress)
        check_file(archive, "downloaded archive")
    except OSError as exc:
        raise DataError(f"{url}: cannot download into {archive.parent} ({exc.strerror or exc})") from None
    try:
        return _extract(archive, split, dest)[0].parent
    except OSError as exc:
        raise DataError(f"{dest}: cannot unpack split {split} from {archive} there ({exc.strerror or exc})") from None


def _fetch_checked(url: str, archive: Path, sha256: str | None, size: int | None, progress: bool) -> None:
    """Download ``url`` to ``archive`` through its ``.part`` file, renamed only once its hash matches."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    part = archive.with_name(archive.name + ".part")
    if os.path.lexists(part):
        check_file(part, "partial download")  # a FIFO would block the resume
    _fetch(url, part, progress)
    if sha256 is not None:
        actual = _sha256(part)
        if actual != sha256.lower():
            have = part.stat().st_size
            part.unlink()
            truncated = f" and it is truncated ({have} of {size} bytes)" if size and have < size else ""
            raise DataError(f"{url}: SHA-256 mismatch: expected {sha256}, got {actual}{truncated}; "
                            f"the partial file {part} was deleted, run the command again to download afresh")
    os.replace(part, archive)


def run_download(args) -> int:
    url = check_url(args.url or os.environ.get(URL_ENV) or EMNIST_URL)
    folder = download(args.split, url=url, sha256=EMNIST_SHA256, size=EMNIST_SIZE, dest=args.dir, progress=True)
    print(f"EMNIST split {args.split}: files in {folder}")
    print(f"the archive stays in {archive_path(url)} for other splits; delete it to free the space")
    return 0


def register(sub) -> None:
    p = sub.add_parser("download", help="download EMNIST (about 562 MB) and unpack one split into the cache",
                       description="Fetch NIST's EMNIST archive, resuming a partial download, check its SHA-256, "
                                   "and unpack the asked-for split.")
    p.add_argument("--split", default=DEFAULT_SPLIT, choices=list(SPLITS),
                   help="which split to unpack (default: %(default)s)")
    p.add_argument("--url", default=None,
                   help=f"where to fetch the archive (default: %(default)s, meaning ${URL_ENV} or {EMNIST_URL})")
    p.add_argument("--dir", default=None, type=paths.argument,
                   help="folder for the split's files (default: %(default)s, meaning <cache>/emnist, "
                        "where the other commands look)")
    p.set_defaults(run=run_download)

"""Peak memory of loading a byclass-sized data set stays near its uint8 size (issue 2, point 2).

EMNIST byclass has 697,932 training and 116,323 test images of 28x28: 638 MB as uint8, 2.6 GB
as float32. The files are generated here (mostly-zero images with a few random bytes, so that
gzip is quick), then a fresh interpreter loads them and reads every image once in batches,
scaled to float32 per batch the way training reads them, and reports its peak resident memory.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

TRAIN, TEST = 697_932, 116_323
PIXELS = 28 * 28
LIMIT = 1.3  # peak above the interpreter's baseline, in multiples of the uint8 size

GENERATE = textwrap.dedent("""
    import struct, sys, zlib
    from pathlib import Path
    import numpy as np

    folder, gz = Path(sys.argv[1]), sys.argv[2] == "gz"
    rng = np.random.default_rng(0)
    chunk = 20_000
    for part, count in (("train", int(sys.argv[3])), ("test", int(sys.argv[4]))):
        for kind, header, shape in (
            ("images-idx3", struct.pack(">IIII", 2051, count, 28, 28), (28 * 28,)),
            ("labels-idx1", struct.pack(">II", 2049, count), ()),
        ):
            name = folder / (f"emnist-byclass-{part}-{kind}-ubyte" + (".gz" if gz else ""))
            # Level 1 and mostly-zero content: gzip of random data would take minutes.
            packer = zlib.compressobj(1, zlib.DEFLATED, 31) if gz else None
            with open(name, "wb") as f:
                write = (lambda b: f.write(packer.compress(b))) if gz else f.write
                write(header)
                for start in range(0, count, chunk):
                    n = min(chunk, count - start)
                    if shape:
                        block = np.zeros((n, *shape), np.uint8)
                        block[np.arange(n)[:, None], rng.integers(0, shape[0], (n, 8))] = rng.integers(1, 256, (n, 8))
                    else:
                        block = rng.integers(0, 62, n, dtype=np.uint8)
                    write(block.tobytes())
                if gz:
                    f.write(packer.flush())
""")

MEASURE = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    import handwritten.emnist

    def peak_kib():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))

    baseline = peak_kib()
    data = handwritten.emnist.load(sys.argv[1], "byclass")
    total, seen = 0.0, 0
    for x in (data.x_train, data.x_test):
        for start in range(0, len(x), 1024):
            batch = x[start:start + 1024].astype(np.float32) / 255.0
            total += float(batch.sum())
            seen += len(batch)
    labels = int(data.y_train.sum()) + int(data.y_test.sum())
    print(json.dumps({"baseline_kib": baseline, "peak_kib": peak_kib(), "seen": seen, "total": total,
                      "labels": labels, "images_type": type(data.x_train).__name__}))
""")


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak from /proc/self/status (Linux)")
@pytest.mark.parametrize("kind", ["plain", "gz"])
def test_byclass_sized_load_costs_about_its_uint8_size(tmp_path, kind, monkeypatch):
    folder = tmp_path / "byclass"
    folder.mkdir()
    subprocess.run([sys.executable, "-c", GENERATE, str(folder), kind, str(TRAIN), str(TEST)], check=True)
    # The decompressed copies of the .gz files go to a cache under tmp_path too.
    monkeypatch.setenv("HANDWRITTEN_CACHE", str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-c", MEASURE, str(folder)], check=True, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])

    uint8_bytes = (TRAIN + TEST) * PIXELS
    above = (result["peak_kib"] - result["baseline_kib"]) * 1024
    print(f"{kind}: peak {above / 2**20:.0f} MiB above a baseline of {result['baseline_kib'] / 1024:.0f} MiB; "
          f"uint8 size {uint8_bytes / 2**20:.0f} MiB; ratio {above / uint8_bytes:.2f}")
    assert result["seen"] == TRAIN + TEST and result["total"] > 0 and result["labels"] > 0
    assert result["images_type"] == "memmap"
    assert above <= LIMIT * uint8_bytes, (
        f"loading and reading a byclass-sized set took {above / 2**20:.0f} MiB above the baseline, "
        f"more than {LIMIT} x its uint8 size ({uint8_bytes / 2**20:.0f} MiB)")
    # Over 1 GB of files: do not leave them for pytest's retention of old temporary folders.
    for path in [*folder.iterdir(), *(tmp_path / "cache").rglob("*")]:
        if path.is_file():
            path.unlink()

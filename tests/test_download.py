"""Downloading MNIST-style files from mirrors, against a local HTTP server only.

Every test patches ``mnist.MIRRORS`` and ``mnist.CHECKSUMS`` so that nothing leaves
127.0.0.1. Behaviour on a damaged cache (documented in docs/datasets.md): ``load``
raises a clear ``DatasetError`` and never re-downloads on its own; ``download``
replaces the damaged file with a verified copy.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

import xpnet.datasets as xds
from xpnet.datasets import DatasetError, DownloadError, read_idx, write_idx
from xpnet.datasets import mnist as mnist_mod
from xpnet.datasets.mnist import CHECKSUMS, FILES, MIRRORS, FileChecksum


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.routes[path] = (body, mode)``; anything else is a 404."""

    def do_GET(self):  # noqa: N802 - http.server API
        route = self.server.routes.get(self.path)  # type: ignore[attr-defined]
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
        if route is None:
            self.send_error(404, "Not Found")
            return
        body, mode = route
        if mode == "hang":
            time.sleep(1.5)
        if mode == "500":
            self.send_error(500, "Internal Server Error")
            return
        self.send_response(200)
        if mode == "truncate":
            # Promise more than we send, then hang up.
            self.send_header("Content-Length", str(len(body) + 1000))
        elif mode != "nolength":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            if mode == "truncate":
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
            elif mode == "trickle":  # each read is quick; the whole transfer is not
                for i in range(0, len(body), 1024):
                    self.wfile.write(body[i : i + 1024])
                    self.wfile.flush()
                    time.sleep(0.05)
            elif mode == "slow":
                for i in range(0, len(body), 2048):
                    self.wfile.write(body[i : i + 2048])
                    self.wfile.flush()
                    time.sleep(0.002)
            else:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.routes = {}  # type: ignore[attr-defined]
    httpd.hits = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    host, port = httpd.server_address[:2]
    try:
        yield httpd, f"http://{host}:{port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def closed_port_url():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connection refused
    return f"http://127.0.0.1:{port}/mnist/"


def _fake_files(seed: int = 0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    arrays = {
        FILES[0]: rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
        FILES[1]: rng.integers(0, 10, 30).astype(np.uint8),
        FILES[2]: rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
        FILES[3]: rng.integers(0, 10, 12).astype(np.uint8),
    }
    out = {}
    for fname, arr in arrays.items():
        header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
        out[fname] = gzip.compress(header + arr.tobytes(), mtime=0)
    return out


@pytest.fixture
def fake(monkeypatch):
    """Patch the MNIST table to four small fake files; return their bytes."""
    files = _fake_files()
    table = {f: FileChecksum(hashlib.sha256(b).hexdigest(), len(b), None) for f, b in files.items()}
    monkeypatch.setitem(CHECKSUMS, "mnist", table)
    monkeypatch.setitem(MIRRORS, "mnist", ("http://127.0.0.1:9/never-used/",))
    return files


def _serve(httpd, prefix: str, files: dict[str, bytes], mode: str = "ok") -> None:
    for fname, body in files.items():
        httpd.routes[f"{prefix}{fname}"] = (body, mode)


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_first_mirror_refused_second_used(server, fake, closed_port_url, tmp_path, monkeypatch):
    httpd, url = server
    _serve(httpd, "/good/", fake)
    monkeypatch.setitem(MIRRORS, "mnist", (closed_port_url, f"{url}/good/"))
    folder = xds.download("mnist", tmp_path / "mn", progress=False)
    assert folder == tmp_path / "mn"
    assert _listing(folder) == sorted(FILES)  # no temp files
    for fname, body in fake.items():
        assert (folder / fname).read_bytes() == body
    # Cached: a second call downloads nothing.
    hits = len(httpd.hits)
    xds.download("mnist", folder, progress=False)
    assert len(httpd.hits) == hits
    ds = xds.load("mnist", data_dir=folder)
    assert ds.x_train.shape == (30, 784) and ds.x_test.shape == (12, 784)
    assert ds.sha256 == {f: CHECKSUMS["mnist"][f].sha256 for f in FILES}


def test_first_mirror_404_then_second(server, fake, tmp_path):
    httpd, url = server
    _serve(httpd, "/b/", fake)
    folder = xds.download(
        "mnist",
        tmp_path,
        progress=False,
        mirrors=[f"{url}/a/", f"{url}/b"],  # no slash
    )
    assert _listing(folder) == sorted(FILES)
    assert f"/a/{FILES[0]}" in httpd.hits and f"/b/{FILES[0]}" in httpd.hits


def test_load_downloads_into_default_cache(server, fake, tmp_path, monkeypatch):
    httpd, url = server
    _serve(httpd, "/m/", fake)
    monkeypatch.setitem(MIRRORS, "mnist", (f"{url}/m/",))
    monkeypatch.setenv("XPNET_DATA_DIR", str(tmp_path / "cache"))
    ds = xds.load("mnist", progress=False)
    assert ds.source == str(tmp_path / "cache" / "mnist")
    assert _listing(tmp_path / "cache" / "mnist") == sorted(FILES)


def test_progress_bar_goes_to_stderr(server, fake, tmp_path, capsys):
    httpd, url = server
    _serve(httpd, "/m/", fake)
    xds.download("mnist", tmp_path, progress=True, mirrors=[f"{url}/m/"])
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "train-images-idx3-ubyte.gz" in captured.err


def test_bad_checksum_leaves_nothing(server, fake, tmp_path):
    httpd, url = server
    wrong = {f: b[:-9] + bytes([b[-9] ^ 1]) + b[-8:] for f, b in fake.items()}  # same size
    _serve(httpd, "/m/", wrong)
    folder = tmp_path / "mn"
    with pytest.raises(DownloadError) as info:
        xds.download("mnist", folder, progress=False, mirrors=[f"{url}/m/"])
    msg = str(info.value)
    assert "SHA-256 mismatch" in msg
    assert f"expected {CHECKSUMS['mnist'][FILES[0]].sha256}" in msg
    assert _listing(folder) == []  # not even a temp file


def test_recompressed_copy_accepted_by_content_digest(server, tmp_path, monkeypatch):
    files = _fake_files()
    # The table knows the published .gz digest AND the content digest; the mirror serves
    # the same content gzipped with another timestamp (different .gz bytes).
    table = {}
    served = {}
    for fname, body in files.items():
        raw = gzip.decompress(body)
        table[fname] = FileChecksum(
            hashlib.sha256(body).hexdigest(), None, hashlib.sha256(raw).hexdigest()
        )
        served[fname] = gzip.compress(raw, mtime=1234567890)
        assert served[fname] != body
    monkeypatch.setitem(CHECKSUMS, "mnist", table)
    httpd, url = server
    _serve(httpd, "/m/", served)
    folder = xds.download("mnist", tmp_path, progress=False, mirrors=[f"{url}/m/"])
    assert (folder / FILES[0]).read_bytes() == served[FILES[0]]
    assert xds.load("mnist", data_dir=folder).x_train.shape == (30, 784)


def test_truncated_transfer_leaves_nothing(server, fake, tmp_path):
    httpd, url = server
    _serve(httpd, "/m/", fake, mode="truncate")
    with pytest.raises(DownloadError, match=r"truncated"):
        xds.download("mnist", tmp_path / "mn", progress=False, mirrors=[f"{url}/m/"])
    assert _listing(tmp_path / "mn") == []


def test_truncated_then_good_mirror(server, fake, tmp_path):
    httpd, url = server
    _serve(httpd, "/bad/", fake, mode="truncate")
    _serve(httpd, "/good/", fake, mode="nolength")
    folder = xds.download(
        "mnist", tmp_path, progress=False, mirrors=[f"{url}/bad/", f"{url}/good/"]
    )
    assert _listing(folder) == sorted(FILES)


def test_wrong_announced_size_is_refused(server, fake, tmp_path):
    httpd, url = server
    _serve(httpd, "/m/", {f: b + b"\x00" for f, b in fake.items()})
    with pytest.raises(DownloadError, match=r"server announces \d+ bytes, the published file"):
        xds.download("mnist", tmp_path, progress=False, mirrors=[f"{url}/m/"])
    assert _listing(tmp_path) == []


def test_oversized_body_without_length_is_cut(server, fake, tmp_path):
    httpd, url = server
    _serve(httpd, "/m/", {f: b + b"\x00" * 10 for f, b in fake.items()}, mode="nolength")
    with pytest.raises(DownloadError, match=r"server sent more than the expected \d+ bytes"):
        xds.download("mnist", tmp_path, progress=False, mirrors=[f"{url}/m/"])
    assert _listing(tmp_path) == []


def test_timeout_then_next_mirror(server, fake, tmp_path):
    httpd, url = server
    _serve(httpd, "/slow/", fake, mode="hang")
    _serve(httpd, "/fast/", fake)
    folder = xds.download(
        "mnist", tmp_path, progress=False, timeout=0.3, mirrors=[f"{url}/slow/", f"{url}/fast/"]
    )
    assert _listing(folder) == sorted(FILES)


def test_a_trickling_sender_is_cut_off_at_the_total_deadline(server, fake, tmp_path,
                                                             monkeypatch):
    """The per-read timeout let a sender trickling bytes hold the download forever."""
    from xpnet.datasets import _download

    monkeypatch.setattr(_download, "DEADLINE_BASE_S", 0.3)
    monkeypatch.setattr(_download, "MIN_BYTES_PER_S", 1e12)
    httpd, url = server
    _serve(httpd, "/trickle/", fake, mode="trickle")
    with pytest.raises(DownloadError, match=r"too slow: \d+ of \d+ bytes after the deadline "
                                            r"of 0\.3 s"):
        xds.download("mnist", tmp_path, progress=False, timeout=10,
                     mirrors=[f"{url}/trickle/"])
    assert _listing(tmp_path) == []


def test_all_mirrors_down_message(server, fake, closed_port_url, tmp_path):
    httpd, url = server
    _serve(httpd, "/err/", fake, mode="500")
    mirrors = [closed_port_url, f"{url}/missing/", f"{url}/err/"]
    with pytest.raises(DownloadError) as info:
        xds.download("mnist", tmp_path / "mn", progress=False, mirrors=mirrors)
    msg = str(info.value)
    assert msg.startswith(f"could not download mnist file {FILES[0]} from any mirror:")
    assert f"{closed_port_url}{FILES[0]}: " in msg
    assert "refused" in msg.lower()
    assert f"{url}/missing/{FILES[0]}: HTTP 404" in msg
    assert f"{url}/err/{FILES[0]}: HTTP 500" in msg
    assert "--data-dir DIR" in msg and "data_dir=DIR" in msg
    for fname in FILES:
        assert fname in msg
    assert isinstance(info.value, DatasetError)
    assert _listing(tmp_path / "mn") == []


def test_mirrors_that_fail_alike_are_named_once(closed_port_url, tmp_path):
    # offline, every mirror fails with the same reason: one clause, not one line each
    mirrors = [closed_port_url, closed_port_url.replace("127.0.0.1", "localhost")]
    with pytest.raises(DownloadError) as info:
        xds.download("mnist", tmp_path / "mn", progress=False, mirrors=mirrors)
    first, help_line = str(info.value).split("\n")
    assert first.startswith(f"could not download mnist file {FILES[0]} from any mirror: ")
    assert first.endswith("(2 mirrors: 127.0.0.1:{0}, localhost:{0}).".format(
        closed_port_url.split(":")[2].split("/")[0]))
    assert "--data-dir DIR" in help_line and all(f in help_line for f in FILES)
    assert len(str(info.value).replace(str(tmp_path / "mn"), "~/mn")) < 400


def test_load_reports_download_failure(fake, closed_port_url, tmp_path, monkeypatch):
    monkeypatch.setitem(MIRRORS, "mnist", (closed_port_url,))
    with pytest.raises(DownloadError, match="--data-dir"):
        xds.load("mnist", data_dir=tmp_path, progress=False)


def test_corrupt_cache_is_an_error_on_load_and_repaired_by_download(
    server, fake, tmp_path, monkeypatch
):
    httpd, url = server
    _serve(httpd, "/m/", fake)
    mirrors = [f"{url}/m/"]
    monkeypatch.setitem(MIRRORS, "mnist", tuple(mirrors))
    folder = xds.download("mnist", tmp_path, progress=False, mirrors=mirrors)
    cached = folder / FILES[2]
    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cached.write_bytes(bytes(data))
    # load re-verifies every file and refuses (no silent re-download).
    hits = len(httpd.hits)
    with pytest.raises(DatasetError, match=rf"{FILES[2]}: SHA-256 mismatch.*xpnet download mnist"):
        xds.load("mnist", data_dir=folder)
    assert len(httpd.hits) == hits
    # download replaces only the damaged file.
    xds.download("mnist", folder, progress=False, mirrors=mirrors)
    assert httpd.hits[hits:] == [f"/m/{FILES[2]}"]
    assert cached.read_bytes() == fake[FILES[2]]
    assert xds.load("mnist", data_dir=folder).x_test.shape == (12, 784)


def test_partial_cache_downloads_only_missing(server, fake, tmp_path):
    httpd, url = server
    _serve(httpd, "/m/", fake)
    (tmp_path / FILES[1]).write_bytes(fake[FILES[1]])
    xds.download("mnist", tmp_path, progress=False, mirrors=[f"{url}/m/"])
    assert f"/m/{FILES[1]}" not in httpd.hits
    assert _listing(tmp_path) == sorted(FILES)


def test_concurrent_threads_same_folder(server, fake, tmp_path):
    httpd, url = server
    _serve(httpd, "/m/", fake, mode="slow")
    folder = tmp_path / "shared"
    errors: list[BaseException] = []

    def worker():
        try:
            xds.download("mnist", folder, progress=False, mirrors=[f"{url}/m/"])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert _listing(folder) == sorted(FILES)
    for fname, body in fake.items():
        assert (folder / fname).read_bytes() == body
    assert read_idx(folder / FILES[0]).shape == (30, 28, 28)


_CHILD = """
import json, sys
from xpnet.datasets import mnist
cfg = json.loads(sys.argv[1])
mnist.CHECKSUMS["mnist"] = {
    f: mnist.FileChecksum(d, s) for f, (d, s) in cfg["table"].items()
}
mnist.download("mnist", cfg["folder"], progress=False, mirrors=[cfg["mirror"]])
print("ok")
"""


def test_concurrent_processes_same_folder(server, fake, tmp_path):
    httpd, url = server
    _serve(httpd, "/m/", fake, mode="slow")
    folder = tmp_path / "shared"
    cfg = json.dumps(
        {
            "table": {f: [CHECKSUMS["mnist"][f].sha256, len(b)] for f, b in fake.items()},
            "folder": str(folder),
            "mirror": f"{url}/m/",
        }
    )
    root = Path(__file__).resolve().parents[1]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, cfg],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert out.strip() == "ok"
    assert _listing(folder) == sorted(FILES)
    for fname, body in fake.items():
        assert (folder / fname).read_bytes() == body


def test_unwritable_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DownloadError, match="cannot create the data folder"):
        xds.download("mnist", blocker / "sub", progress=False, mirrors=[])


def test_no_mirrors_configured(fake, tmp_path):
    with pytest.raises(DownloadError, match="no mirrors configured"):
        xds.download("mnist", tmp_path, progress=False, mirrors=[])


def test_real_mirror_table_is_sane():
    for name in ("mnist", "fashion-mnist"):
        assert set(mnist_mod.CHECKSUMS[name]) == set(FILES)
        assert len(mnist_mod.MIRRORS[name]) >= 2
        for spec in mnist_mod.CHECKSUMS[name].values():
            assert len(spec.sha256) == 64 and int(spec.sha256, 16) >= 0
            assert spec.size and spec.size > 0
    assert mnist_mod.MIRRORS["mnist"][0] == "https://ossci-datasets.s3.amazonaws.com/mnist/"


def test_write_idx_files_are_loadable_after_download(server, tmp_path, monkeypatch):
    # Files made by write_idx (gzip, mtime 0) round-trip through the whole pipeline.
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(3)
    table = {}
    for fname in FILES:
        shape = (5, 28, 28) if "images" in fname else (5,)
        p = write_idx(src / fname, rng.integers(0, 10, shape).astype(np.uint8))
        table[fname] = FileChecksum(hashlib.sha256(p.read_bytes()).hexdigest(), None)
    monkeypatch.setitem(CHECKSUMS, "mnist", table)
    httpd, url = server
    _serve(httpd, "/w/", {f: (src / f).read_bytes() for f in FILES})
    monkeypatch.setitem(MIRRORS, "mnist", (f"{url}/w/",))
    ds = xds.load("mnist", data_dir=tmp_path / "dst", progress=False)
    assert ds.x_train.shape == (5, 784)


def test_load_reports_damaged_file_before_downloading_missing(server, fake, tmp_path, monkeypatch):
    httpd, url = server
    _serve(httpd, "/m/", fake)
    monkeypatch.setitem(MIRRORS, "mnist", (f"{url}/m/",))
    damaged = bytearray(fake[FILES[0]])
    damaged[len(damaged) // 2] ^= 0x01  # same size, different bytes
    (tmp_path / FILES[0]).write_bytes(bytes(damaged))
    with pytest.raises(DatasetError, match=rf"{FILES[0]}: SHA-256 mismatch"):
        xds.load("mnist", data_dir=tmp_path, progress=False)
    assert httpd.hits == []  # nothing fetched, nothing replaced
    assert _listing(tmp_path) == [FILES[0]]


def test_concurrent_threads_with_progress_bars(server, fake, tmp_path):
    # Only one rich live display may run at a time; extra ones fall back to no bar.
    httpd, url = server
    _serve(httpd, "/m/", fake, mode="slow")
    errors: list[BaseException] = []

    def worker():
        try:
            xds.download("mnist", tmp_path, progress=True, mirrors=[f"{url}/m/"])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert _listing(tmp_path) == sorted(FILES)


def test_an_oversized_cache_file_is_refused_before_it_is_read(fake, tmp_path):
    """A 6 GB file in the MNIST cache was read whole before its known size was checked."""
    for fname, body in fake.items():
        (tmp_path / fname).write_bytes(body)
    with open(tmp_path / FILES[0], "r+b") as f:
        f.truncate(6 * 10**9)  # sparse: no disk used; its size is refused from fstat
    with pytest.raises(DatasetError, match=r"6,000,000,000 bytes, more than any copy of the "
                                           r"mnist file train-images-idx3-ubyte\.gz"):
        xds.load("mnist", tmp_path)

"""fetch_dataset against a local HTTP server on 127.0.0.1; nothing here reaches the internet."""

import hashlib
import io
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from fakedata import write_cifar, write_mnist_like
from kdforaa.config import DataConfig
from kdforaa.data import fetch
from kdforaa.data.datasets import load_dataset
from kdforaa.data.fetch import Source, fetch_dataset
from kdforaa.errors import BadInput

OFFICIAL_HOST = "http://official.invalid"  # never contacted: every test passes base_url


class FileServer:
    """Serves ``files`` (name -> bytes) with HTTP Range support; records each request's Range."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.honour_range = True
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                name = self.path.lstrip("/")
                asked = self.headers.get("Range")
                server.requests.append((name, asked))
                if name not in server.files:
                    self.send_error(404)
                    return
                body, start = server.files[name], 0
                if asked and server.honour_range:
                    start = int(asked.removeprefix("bytes=").rstrip("-"))
                    if start >= len(body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                self.wfile.write(body[start:])

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def server():
    srv = FileServer()
    thread = threading.Thread(target=srv.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _publish(monkeypatch, server, name: str, files: dict[str, bytes], unpacks_to: str | None = None):
    """Serve ``files`` and make them the published files of ``name``, with matching checksums."""
    server.files.update(files)
    source = Source(OFFICIAL_HOST, tuple((f, _md5(data)) for f, data in files.items()), unpacks_to)
    monkeypatch.setitem(fetch.SOURCES, name, source)


@pytest.fixture
def mnist_files(tmp_path) -> dict[str, bytes]:
    fake = write_mnist_like(tmp_path / "source", n_train=20, n_test=8)
    return {p.name: p.read_bytes() for p in sorted(fake.root.iterdir())}


def _tarball(members: dict[str, bytes], symlink: tuple[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if symlink:
            info = tarfile.TarInfo(symlink[0])
            info.type, info.linkname = tarfile.SYMTYPE, symlink[1]
            tar.addfile(info)
    return buffer.getvalue()


def test_published_checksums_are_recorded():
    assert set(fetch.SOURCES) == {"fashion-mnist", "mnist", "cifar10", "cifar100"}
    for source in fetch.SOURCES.values():
        assert all(len(md5) == 32 and int(md5, 16) >= 0 for _, md5 in source.files)
    assert fetch.SOURCES["cifar10"].unpacks_to == "cifar-10-batches-py"


def test_fetch_idx_then_load(tmp_path, monkeypatch, server, mnist_files):
    _publish(monkeypatch, server, "mnist", mnist_files)
    folder = fetch_dataset("mnist", root=tmp_path / "data", base_url=server.url, progress=False)
    assert folder == tmp_path / "data" / "mnist"
    assert {p.name for p in folder.iterdir()} == set(mnist_files)
    for root in (folder, folder.parent):
        ds = load_dataset(DataConfig(name="mnist", root=str(root)), "train")
        assert len(ds) == 20 and ds.data.shape == (20, 1, 28, 28)
    served = len(server.requests)
    fetch_dataset("mnist", root=tmp_path / "data", base_url=server.url, progress=False)
    assert len(server.requests) == served  # verified files are not fetched again


def test_progress_off_a_terminal_is_one_line_per_file(tmp_path, monkeypatch, server, mnist_files, capsys):
    _publish(monkeypatch, server, "mnist", mnist_files)
    fetch_dataset("mnist", root=tmp_path, base_url=server.url, progress=True)
    out, err = capsys.readouterr()
    assert "\r" not in out + err
    assert [line.split(" (")[0] for line in err.splitlines()] == [
        f"downloaded {server.url}/{name}" for name in mnist_files
    ]


def test_default_root_is_kdforaa_data(tmp_path, monkeypatch, server, mnist_files):
    _publish(monkeypatch, server, "fashion-mnist", mnist_files)
    monkeypatch.setenv("KDFORAA_DATA", str(tmp_path))
    assert fetch_dataset("fashion-mnist", base_url=server.url, progress=False) == tmp_path / "fashion-mnist"
    assert len(load_dataset(DataConfig(), "test")) == 8


def test_resume_continues_a_partial_download(tmp_path, monkeypatch, server, mnist_files):
    _publish(monkeypatch, server, "mnist", mnist_files)
    name = "train-images-idx3-ubyte.gz"
    dest = tmp_path / "mnist"
    dest.mkdir()
    half = len(mnist_files[name]) // 2
    (dest / f"{name}.part").write_bytes(mnist_files[name][:half])
    fetch_dataset("mnist", root=tmp_path, base_url=server.url, progress=False)
    assert (name, f"bytes={half}-") in server.requests
    assert (dest / name).read_bytes() == mnist_files[name]
    assert not list(dest.glob("*.part"))


def test_server_ignoring_range_restarts_from_zero(tmp_path, monkeypatch, server, mnist_files):
    _publish(monkeypatch, server, "mnist", mnist_files)
    server.honour_range = False
    name = "t10k-labels-idx1-ubyte.gz"
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / f"{name}.part").write_bytes(b"garbage that must not stay")
    fetch_dataset("mnist", root=tmp_path, base_url=server.url, progress=False)
    assert (tmp_path / "mnist" / name).read_bytes() == mnist_files[name]


def test_complete_part_file_is_verified_not_refetched(tmp_path, monkeypatch, server, mnist_files):
    _publish(monkeypatch, server, "mnist", mnist_files)
    name = "t10k-labels-idx1-ubyte.gz"
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / f"{name}.part").write_bytes(mnist_files[name])
    fetch_dataset("mnist", root=tmp_path, base_url=server.url, progress=False)
    assert (tmp_path / "mnist" / name).read_bytes() == mnist_files[name]


def test_checksum_mismatch_leaves_nothing(tmp_path, monkeypatch, server, mnist_files):
    _publish(monkeypatch, server, "mnist", mnist_files)
    name = "train-labels-idx1-ubyte.gz"
    server.files[name] = b"tampered" + mnist_files[name]
    with pytest.raises(BadInput, match=rf"checksum mismatch for {server.url}/{name}: md5 \w+, expected"):
        fetch_dataset("mnist", root=tmp_path, base_url=server.url, progress=False)
    assert not (tmp_path / "mnist" / name).exists()
    assert not (tmp_path / "mnist" / f"{name}.part").exists()


def test_missing_file_on_server(tmp_path, monkeypatch, server, mnist_files):
    _publish(monkeypatch, server, "mnist", mnist_files)
    del server.files["t10k-images-idx3-ubyte.gz"]
    with pytest.raises(BadInput, match=r"cannot download .*t10k-images-idx3-ubyte.gz: HTTP 404"):
        fetch_dataset("mnist", root=tmp_path, base_url=server.url, progress=False)


def test_unreachable_host_is_bad_input(tmp_path, monkeypatch, server, mnist_files):
    _publish(monkeypatch, server, "mnist", mnist_files)
    port = server.httpd.server_address[1]
    server.httpd.shutdown()
    server.httpd.server_close()
    with pytest.raises(BadInput, match="run the same command again to resume"):
        fetch_dataset("mnist", root=tmp_path, base_url=f"http://127.0.0.1:{port}", progress=False)


def test_unknown_name():
    with pytest.raises(
        BadInput, match="cannot fetch 'svhn': choose one of fashion-mnist, mnist, cifar10, cifar100"
    ):
        fetch_dataset("svhn")


def test_fetch_cifar_tarball_then_load(tmp_path, monkeypatch, server):
    fake = write_cifar(tmp_path / "source", n_train=10, n_test=5)
    members = {
        str(p.relative_to(fake.root)): p.read_bytes()
        for p in sorted((fake.root / "cifar-10-batches-py").iterdir())
    }
    _publish(
        monkeypatch, server, "cifar10", {"cifar-10-python.tar.gz": _tarball(members)}, "cifar-10-batches-py"
    )
    folder = fetch_dataset("cifar10", root=tmp_path / "data", base_url=server.url, progress=False)
    assert sorted(p.name for p in folder.iterdir()) == ["cifar-10-batches-py"]  # tarball removed
    ds = load_dataset(DataConfig(name="cifar10", root=str(folder)), "train")
    assert torch.equal(ds.data, torch.from_numpy(fake.train[0]))
    served = len(server.requests)
    fetch_dataset("cifar10", root=tmp_path / "data", base_url=server.url, progress=False)
    assert len(server.requests) == served


@pytest.mark.parametrize(
    "members, symlink",
    [
        ({"cifar-10-batches-py/../../escaped.txt": b"x"}, None),
        ({"/tmp/absolute-kdforaa-test.txt": b"x"}, None),
        ({"cifar-10-batches-py/meta": b"x"}, ("cifar-10-batches-py/link", "/etc/passwd")),
    ],
    ids=["dotdot", "absolute", "symlink"],
)
def test_unsafe_tarball_is_refused(tmp_path, monkeypatch, server, members, symlink):
    archive = _tarball(members, symlink)
    _publish(monkeypatch, server, "cifar10", {"cifar-10-python.tar.gz": archive}, "cifar-10-batches-py")
    root = tmp_path / "a" / "b"
    with pytest.raises(BadInput, match="refusing to unpack"):
        fetch_dataset("cifar10", root=root, base_url=server.url, progress=False)
    assert not (tmp_path / "a" / "escaped.txt").exists() and not (root / "escaped.txt").exists()
    assert not Path("/tmp/absolute-kdforaa-test.txt").exists()
    assert not (root / "cifar10" / "cifar-10-batches-py").exists()
    assert not list((root / "cifar10").glob(".*unpacking"))


def test_tarball_without_expected_folder(tmp_path, monkeypatch, server):
    archive = _tarball({"something-else/file": b"x"})
    _publish(monkeypatch, server, "cifar100", {"cifar-100-python.tar.gz": archive}, "cifar-100-python")
    with pytest.raises(BadInput, match="does not contain the folder cifar-100-python/"):
        fetch_dataset("cifar100", root=tmp_path, base_url=server.url, progress=False)

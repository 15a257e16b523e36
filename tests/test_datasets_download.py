"""Downloads against a local HTTP server on 127.0.0.1: resume, checksum retry, extraction, prepare."""
from __future__ import annotations

import hashlib
import io
import socket
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from local_server import Server
from PIL import Image

import benchmark.data as bd
from benchmark.data import download
from benchmark.data.cards import parse_card
from benchmark.data.prepare import prepare_card, status

PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def server(server: Server) -> Server:
    """The shared local server (tests/conftest.py) serving PAYLOAD at /data.bin."""
    server.files["/data.bin"] = PAYLOAD
    return server


def test_full_download_then_kept(server: Server, tmp_path: Path) -> None:
    dest = download.fetch_http(server.url + "/data.bin", tmp_path / "d.bin", SHA, len(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD and not (tmp_path / "d.bin.part").exists()
    download.fetch_http(server.url + "/data.bin", dest, SHA, len(PAYLOAD))
    assert len(server.requests) == 1  # verified file is not fetched again


def test_resume_from_partial_file(server: Server, tmp_path: Path) -> None:
    (tmp_path / "d.bin.part").write_bytes(PAYLOAD[:30_000])
    dest = download.fetch_http(server.url + "/data.bin", tmp_path / "d.bin", SHA, len(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == ["/data.bin"] and server.ranges == ["bytes=30000-"] and server.sent == len(PAYLOAD) - 30_000


def test_interrupted_download_resumes_on_next_call(server: Server, tmp_path: Path) -> None:
    server.cut_next_after = 50_000
    with pytest.raises(bd.SourceUnavailable, match="run again to resume"):
        download.fetch_http(server.url + "/data.bin", tmp_path / "d.bin", SHA, len(PAYLOAD))
    kept = (tmp_path / "d.bin.part").stat().st_size  # whole blocks received before the cut
    assert 0 < kept <= 50_000
    download.fetch_http(server.url + "/data.bin", tmp_path / "d.bin", SHA, len(PAYLOAD))
    assert (tmp_path / "d.bin").read_bytes() == PAYLOAD and server.ranges[-1] == f"bytes={kept}-"


def test_server_ignoring_range_restarts(server: Server, tmp_path: Path) -> None:
    server.honour_range = False
    (tmp_path / "d.bin.part").write_bytes(b"garbage" * 100)
    assert download.fetch_http(server.url + "/data.bin", tmp_path / "d.bin", SHA).read_bytes() == PAYLOAD


def test_complete_part_file_answered_416(server: Server, tmp_path: Path) -> None:
    (tmp_path / "d.bin.part").write_bytes(PAYLOAD)
    assert download.fetch_http(server.url + "/data.bin", tmp_path / "d.bin", SHA).read_bytes() == PAYLOAD
    assert server.sent == 0


def test_checksum_mismatch_is_retried_once_then_fails_naming_the_file(server: Server, tmp_path: Path) -> None:
    server.corrupt_next = 2
    with pytest.raises(bd.ChecksumError) as err:
        download.fetch_http(server.url + "/data.bin", tmp_path / "d.bin", SHA)
    assert str(tmp_path / "d.bin") in str(err.value) and SHA in str(err.value) and "2 downloads" in str(err.value)
    assert len(server.requests) == 2 and all(r is None for r in server.ranges)  # the retry starts over
    assert not (tmp_path / "d.bin").exists() and not (tmp_path / "d.bin.part").exists()


def test_checksum_mismatch_then_good_download(server: Server, tmp_path: Path) -> None:
    server.corrupt_next = 1
    assert download.fetch_http(server.url + "/data.bin", tmp_path / "d.bin", SHA).read_bytes() == PAYLOAD
    assert len(server.requests) == 2


def test_offline_and_http_errors_say_what_failed(server: Server, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(bd.SourceUnavailable, match=f"{closed}/x.zip: download failed \\(cannot connect to 127.0.0.1"):
        download.fetch_http(f"http://127.0.0.1:{closed}/x.zip", tmp_path / "x.zip", timeout=5)
    with pytest.raises(bd.SourceUnavailable, match=r"missing.zip: download failed \(HTTP 404 Not Found\)"):
        download.fetch_http(server.url + "/missing.zip", tmp_path / "m.zip")


def test_gdrive_wrapper_verifies_and_retries(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import gdown

    calls: list[str] = []

    def fake_download(id: str, output: str, quiet: bool, resume: bool) -> str:
        calls.append(id)
        Path(output).write_bytes(PAYLOAD if len(calls) > 1 else b"html error page")
        return output

    monkeypatch.setattr(gdown, "download", fake_download)
    assert download.fetch_gdrive("FILEID", tmp_path / "g.zip", SHA).read_bytes() == PAYLOAD and calls == ["FILEID"] * 2

    def failing(**kwargs: object) -> None:
        raise gdown.exceptions.FileURLRetrievalError("Too many users have viewed or downloaded this file")

    monkeypatch.setattr(gdown, "download_folder", failing)
    with pytest.raises(bd.SourceUnavailable, match="drive/folders/FOLDER: Google Drive download failed.*Too many users"):
        download.fetch_gdrive_folder("FOLDER", tmp_path / "f")


def _png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_extract_zip_and_tar_once_and_refuse_escapes(tmp_path: Path) -> None:
    (tmp_path / "a.zip").write_bytes(_zip({"top/x.png": _png(1)}))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("deep/y.png")
        data = _png(2)
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    (tmp_path / "b.tar.gz").write_bytes(buf.getvalue())
    assert download.extract_all(tmp_path) == [tmp_path / "a.zip", tmp_path / "b.tar.gz"]
    assert (tmp_path / "top/x.png").is_file() and (tmp_path / "deep/y.png").is_file()
    (tmp_path / "top/x.png").unlink()
    download.extract_all(tmp_path)  # marker: not extracted again
    assert not (tmp_path / "top/x.png").exists()
    evil = tmp_path / "evil" / "e.zip"
    evil.parent.mkdir()
    evil.write_bytes(_zip({"../escaped.png": b"x"}))
    with pytest.raises(bd.SourceUnavailable, match="refusing"):
        download.extract(evil)
    assert not (tmp_path / "escaped.png").exists()


def _card(tmp_path: Path, url: str, sha: str | None, kind: str = "download") -> bd.Card:
    source = {"id": "web", "type": "http", "url": url, "filename": "up.zip", "into": "up"}
    if sha:
        source["sha256"] = sha
    if kind == "manual":
        source = {"id": "pan", "type": "baidu", "url": "https://pan.baidu.com/s/XYZ", "code": "abcd", "into": "up"}
    data = {"name": "up", "title": "t", "kind": kind, "description": "d", "citation": "c", "licence": "l",
            "prepare": "p", "sources": [source],
            "layout": {"test/input": {"from": "up", "paths": ["**/Test/Low"]}, "test/gt": {"from": "up", "paths": ["**/Test/High"]},
                       "train/backlit": {"from": "up", "paths": ["**/Train/Low"], "required": False}},
            "expect": {"test/input": 2}}
    return parse_card(data, tmp_path / "up.yaml", text=str(data))


def test_prepare_card_downloads_extracts_and_lays_out(server: Server, tmp_path: Path) -> None:
    archive = _zip({"UP/Test/Low/0001.JPG": _png(10), "UP/Test/Low/0001(2).JPG": _png(10), "UP/Test/Low/0002.JPG": _png(20),
                    "UP/Test/High/0001.png": _png(100), "UP/Test/High/0002.png": _png(200)})
    server.files["/up.zip"] = archive
    card = _card(tmp_path, server.url + "/up.zip", hashlib.sha256(archive).hexdigest())
    root = tmp_path / "data"
    assert status(card, root).state == "missing"
    dest = prepare_card(card, root)
    assert sorted(p.name for p in (dest / "test/input").iterdir()) == ["0001.JPG", "0002.JPG"]
    assert sorted(p.name for p in (dest / "test/gt").iterdir()) == ["0001.png", "0002.png"]
    assert not (dest / "train").exists()  # optional target absent upstream
    assert (root / "raw/up/up.zip").is_file() and status(card, root).state == "present"
    n = len(server.requests)
    assert prepare_card(card, root) == dest and len(server.requests) == n  # idempotent, no network


def test_prepare_card_offline_uses_placed_files_or_explains(tmp_path: Path) -> None:
    card = _card(tmp_path, "http://127.0.0.1:9/up.zip", None, kind="manual")
    root = tmp_path / "data"
    with pytest.raises(bd.SourceUnavailable) as err:
        prepare_card(card, root)
    msg = str(err.value)
    assert f"{root}/raw/up/" in msg and "https://pan.baidu.com/s/XYZ" in msg and "extraction code abcd" in msg
    assert "**/Test/Low  -> test/input" in msg and "bench datasets prepare up" in msg
    assert status(card, root).state == "manual"
    (root / "raw/up/Wrong/Name").mkdir(parents=True)
    with pytest.raises(bd.SourceUnavailable, match="Folders found there now: Wrong, Wrong/Name"):
        prepare_card(card, root)
    (root / "raw/up/placed.zip").write_bytes(_zip({"x/test/low/a.png": _png(5), "x/test/high/a.png": _png(50)}))
    assert status(card, root).state == "ready"  # the archive will be extracted by prepare
    dest = prepare_card(card, root)
    assert bd.test_pairs(dest) == [(dest / "test/input/a.png", dest / "test/gt/a.png")]


def test_prepare_card_checks_the_committed_manifest(tmp_path: Path) -> None:
    from benchmark.data.manifest import write_manifest

    card = _card(tmp_path, "http://127.0.0.1:9/up.zip", None, kind="manual")
    data = {**card.__dict__}
    root = tmp_path / "data"
    for sub, value in (("Low", 5), ("High", 50)):
        (root / f"raw/up/x/Test/{sub}").mkdir(parents=True)
        (root / f"raw/up/x/Test/{sub}/a.png").write_bytes(_png(value))
    gt_sha = hashlib.sha256(_png(50)).hexdigest()
    manifest = tmp_path / "up.sha256"
    write_manifest(manifest, {"test/input/a.png": hashlib.sha256(_png(6)).hexdigest(), "test/gt/a.png": gt_sha})
    data["manifest"] = manifest
    card = bd.Card(**data)
    with pytest.raises(bd.DatasetError, match="corrupted \\(sha256 differs\\) 1: test/input/a.png"):
        prepare_card(card, root)
    assert status(card, root).state == "stale"
    write_manifest(manifest, {"test/input/a.png": hashlib.sha256(_png(5)).hexdigest(), "test/gt/a.png": gt_sha})
    assert prepare_card(card, root) == root / "up" and status(card, root).state == "present"


def test_never_replaces_a_foreign_folder(tmp_path: Path) -> None:
    from benchmark.data.prepare import synthesize
    from benchmark.data.synthetic import GeneratorParams

    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(bd.DatasetError, match="refusing to replace"):
        synthesize(mine, GeneratorParams(long_side=64, train_crops=1, unpaired_crops=1, test_crops=1))
    assert [p.name for p in mine.iterdir()] == ["holiday.jpg"] and not list(tmp_path.glob(".photos*"))

"""The dataset mirror ($BACKLIT_BENCH_MIRROR) against a local HTTP server serving the paper fixtures."""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest
from fixtures_paper import mirror_files, paper_archives
from local_server import Server

import benchmark.data as bd
from benchmark.data.mirror import MIRROR_ENV
from benchmark.data.prepare import prepare_card, status

PAPER_CARDS = ("baid", "backlit300", "div2k", "lsrw-huawei", "lsrw-nikon")


@pytest.fixture
def mirror(server: Server, monkeypatch: pytest.MonkeyPatch) -> Server:
    server.files.update(mirror_files())
    monkeypatch.setenv(MIRROR_ENV, server.url + "/")
    return server


def _counts(dest: Path) -> dict[str, int]:
    return {t: len(list((dest / t).iterdir())) for t in bd.TARGETS if (dest / t).is_dir()}


def test_every_paper_card_is_prepared_from_the_mirror(mirror: Server, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "data"
    assert status(bd.load_card("lsrw-huawei"), root).state == "missing"  # manual-only, but the mirror has it
    caplog.set_level(logging.WARNING, "benchmark.data")
    dests = {name: prepare_card(bd.load_card(name), root) for name in PAPER_CARDS}
    assert _counts(dests["baid"]) == {"train/backlit": 4, "train/welllit-paired": 4, "train/welllit-unpaired": 4,
                                      "test/input": 2, "test/gt": 2}
    assert sorted(p.name for p in (dests["baid"] / "test/input").iterdir()) == ["0001.JPG", "0002.JPG"]
    stamp = json.loads((dests["baid"] / "prepared.json").read_text())
    assert stamp["problems"]["test"]["dropped_duplicates"] == ["0002(2).png -> kept 0002.JPG"]
    assert set(stamp["mirror"]) == {"clip-lit-test", "rave-baid", "rave-div2k"}
    assert stamp["mirror"]["rave-div2k"]["mirror"] == mirror.url
    assert _counts(dests["backlit300"]) == {"test/input": 2}
    assert _counts(dests["div2k"]) == {"train/welllit-unpaired": 4}
    for camera in ("huawei", "nikon"):
        assert _counts(dests[f"lsrw-{camera}"]) == {"train/backlit": 4, "train/welllit-paired": 4, "test/input": 2,
                                                   "test/gt": 2}
    # each group fetched once (lists + archives), although baid/backlit300 and the lsrw cards share theirs
    assert sorted(mirror.requests) == sorted(p for p in mirror.files if not p.startswith("/weights/"))
    # div2k's card checksum is upstream's: the mirror's differing one is used, with a warning
    fixture = paper_archives()["div2k"]["DIV2K_train_HR.zip"]
    assert any("DIV2K_train_HR.zip has sha256 " + hashlib.sha256(fixture).hexdigest() in r.getMessage()
               and "9d0b9c463f6e35b6" in r.getMessage() for r in caplog.records)
    assert all(status(bd.load_card(n), root).state == "present" for n in PAPER_CARDS)


def test_a_corrupted_mirror_file_is_retried_then_refused(mirror: Server, tmp_path: Path) -> None:
    archive = "/div2k/DIV2K_train_HR.zip"
    good = mirror.files[archive]
    mirror.files[archive] = b"x" + good[1:]
    with pytest.raises(bd.ChecksumError, match="DIV2K_train_HR.zip: sha256 mismatch after 2 downloads"):
        prepare_card(bd.load_card("div2k"), tmp_path / "data")
    assert mirror.requests.count(archive) == 2 and not (tmp_path / "data/raw/div2k/DIV2K_train_HR.zip").exists()
    mirror.files[archive] = good
    assert _counts(prepare_card(bd.load_card("div2k"), tmp_path / "data")) == {"train/welllit-unpaired": 4}


def test_a_group_missing_from_the_mirror_says_where_it_was_expected(mirror: Server, tmp_path: Path) -> None:
    del mirror.files["/lsrw/SHA256SUMS"]
    with pytest.raises(bd.SourceUnavailable) as err:
        prepare_card(bd.load_card("lsrw-nikon"), tmp_path / "data")
    msg = str(err.value)
    assert f"{mirror.url}/lsrw/SHA256SUMS" in msg and "404" in msg and f"{MIRROR_ENV} is set" in msg
    assert "pan.baidu.com" in msg  # the card's own sources are still named


def test_without_the_mirror_nothing_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    assert status(bd.load_card("lsrw-huawei"), tmp_path).state == "manual"


def test_released_weights_come_from_the_mirror(mirror: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    from benchmark.weights import RELEASED, WeightsUnavailable, download
    from methods.enhancer_api import checkpoint_network, open_checkpoint

    monkeypatch.setenv("BACKLIT_BENCH_WEIGHTS", str(tmp_path / "cache"))
    caplog.set_level(logging.WARNING, "benchmark.data")
    for name, network in (("rave-unpaired-shifted", "enhance-net"), ("zero-dce", "zero-dce")):
        w = RELEASED[name]
        path = download(w)
        assert path == tmp_path / "cache" / name / w.filename and checkpoint_network(path) == network
        open_checkpoint(path, device="cpu")  # the stand-in holds the right network
        assert f"/weights/{w.filename}" in mirror.requests and w.sha256 in caplog.text  # upstream's, warned about
    del mirror.files["/weights/SHA256SUMS"]
    with pytest.raises(WeightsUnavailable, match="weights/SHA256SUMS.*404"):
        download(RELEASED["rave-paired"])

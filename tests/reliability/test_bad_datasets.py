"""Bad data sets: missing or mis-sized ground truth, duplicate copies, empty folders, and downloads
whose checksum does not match (retried once, then a clear error naming the file)."""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from local_server import Server
from rel_helpers import scene, write_image

import benchmark.data as bd
from benchmark import weights as W
from benchmark.cli import cli
from benchmark.data import download
from benchmark.data.layout import read_stamp
from benchmark.enhance import output_names
from benchmark.evaluate import evaluate_system, read_scores, resolve_test_set
from methods.train_api import train_method


def _dataset(root: Path, stems: list[str], gt: list[str], gt_size: dict[str, tuple[int, int]] | None = None) -> Path:
    for k, stem in enumerate(stems):
        write_image(root / "test" / "input" / f"{stem}.png", scene(k) * 0.3)
    for k, stem in enumerate(gt):
        h, w = (gt_size or {}).get(stem, (48, 64))
        write_image(root / "test" / "gt" / f"{stem}.png", scene(stems.index(stem), h, w))
    return root


def _evaluate(ds: Path, out: Path, metrics: list[str]):
    return evaluate_system("input", ds.name, ds / "test" / "input", dataset_dir=ds, out_csv=out, metrics=metrics,
                           device="cpu", progress=False)


def test_missing_ground_truth_for_one_input(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ds = _dataset(tmp_path / "ds", ["a", "b", "c"], gt=["a", "c"])
    with caplog.at_level(logging.WARNING, logger="benchmark.data"):
        pairs = {i.name: g.name if g else None for i, g in bd.test_pairs(ds)}
    assert pairs == {"a.png": "a.png", "b.png": None, "c.png": "c.png"}
    assert "no ground truth for b.png" in caplog.text
    res = _evaluate(ds, tmp_path / "s.csv", ["psnr", "piqe"])
    scored = {(r.image, r.metric) for r in res.scores.itertuples() if r.metric in ("psnr", "piqe")}
    assert scored == {("a", "psnr"), ("a", "piqe"), ("b", "piqe"), ("c", "psnr"), ("c", "piqe")}
    assert res.failed == [{"image": "b", "metric": "psnr",
                           "error": f"{ds / 'test' / 'input' / 'b.png'}: no ground truth with this stem"}]


def test_mismatched_sizes_name_both_files(tmp_path: Path) -> None:
    ds = _dataset(tmp_path / "ds", ["a", "b"], gt=["a", "b"], gt_size={"b": (40, 64)})
    inp, gt = ds / "test" / "input" / "b.png", ds / "test" / "gt" / "b.png"
    with pytest.raises(bd.DatasetError) as err:
        bd.test_pairs(ds)
    assert str(inp) in str(err.value) and str(gt) in str(err.value) and "size mismatch" in str(err.value)
    res = _evaluate(ds, tmp_path / "s.csv", ["psnr", "ssim"])  # scoring goes on; the pair fails, named
    assert set(res.scores["image"]) == {"a"}
    assert len(res.failed) == 2
    assert all(str(inp) in f["error"] and str(gt) in f["error"] and "size mismatch" in f["error"] for f in res.failed)


def test_duplicate_copies_are_dropped_and_recorded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = tmp_path / "baidlike"
    for name in ("0152.png", "0152(2).png", "0153.png"):
        write_image(src / "input" / name, scene(1))
    for name in ("0152.png", "0153.png"):
        write_image(src / "gt" / name, scene(2))
    with caplog.at_level(logging.WARNING, logger="benchmark.data"):
        dest = bd.prepare(str(src), root=tmp_path / "data")
    assert sorted(p.name for p in (dest / "test" / "input").iterdir()) == ["0152.png", "0153.png"]
    assert read_stamp(dest)["problems"]["test"]["dropped_duplicates"] == ["0152(2).png -> kept 0152.png"]
    assert "0152(2).png" in caplog.text
    assert [(i.name, g.name) for i, g in bd.test_pairs(dest)] == [
        ("0152.png", "0152.png"), ("0153.png", "0153.png")]
    # inputs with the same stem but another extension get distinct output names
    names = output_names([Path("x/a.png"), Path("x/a.JPG"), Path("x/b.png")])
    assert sorted(names.values()) == ["a-jpg.png", "a.png", "b.png"]


def test_empty_folders_are_clear_errors(tmp_path: Path, checkpoint: Path, train_data: dict[str, Path]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(bd.DatasetError, match=rf"{empty}: no images in a recognised layout"):
        bd.prepare(str(empty), root=tmp_path / "data")
    res = CliRunner().invoke(cli, ["enhance", "-w", str(checkpoint), "-i", str(empty), "-o", str(tmp_path / "o")])
    assert res.exit_code == 1 and f"Error: {empty}: no images found" in res.output
    assert not (tmp_path / "o" / "summary.json").exists()
    with pytest.raises(FileNotFoundError, match=rf"{empty}: no images found"):
        train_method("rave", empty, train_data["welllit"], tmp_path / "run")
    (tmp_path / "ds" / "test" / "input").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"test/input: no test images found \(empty folder\)"):
        resolve_test_set(tmp_path / "ds")
    res = CliRunner().invoke(cli, ["evaluate", "-d", str(tmp_path / "ds"), "-s", "x", "--results", str(tmp_path / "r")])
    assert res.exit_code == 1 and "no test images found" in res.output


PAYLOAD = bytes(range(256)) * 64


def test_dataset_download_checksum_mismatch_is_retried_once(server: Server, tmp_path: Path) -> None:
    server.files["/d.zip"] = PAYLOAD
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    server.corrupt_next = 2
    with pytest.raises(bd.ChecksumError) as err:
        download.fetch_http(server.url + "/d.zip", tmp_path / "d.zip", sha)
    assert len(server.requests) == 2  # downloaded, retried once, then gave up
    msg = str(err.value)
    assert str(tmp_path / "d.zip") in msg and sha in msg and "2 downloads" in msg
    assert list(tmp_path.iterdir()) == []  # nothing wrong is kept
    server.corrupt_next = 1
    assert download.fetch_http(server.url + "/d.zip", tmp_path / "d.zip", sha).read_bytes() == PAYLOAD
    assert len(server.requests) == 4


def test_released_weights_checksum_mismatch_is_retried_once(server: Server, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKLIT_BENCH_WEIGHTS", str(tmp_path / "cache"))
    monkeypatch.setenv("BACKLIT_BENCH_WEIGHTS_MIRRORS", "")
    monkeypatch.setattr(W, "REFERENCE_DIR", tmp_path / "reference")  # hide ../shared/reference/checkpoints
    monkeypatch.setattr(W.ReleasedWeights, "url", property(lambda self: f"{server.url}/{self.filename}"))
    w = W.RELEASED["rave-unpaired"]
    server.files["/rave_unpaired.pth"] = b"\0" * w.size  # right size, wrong bytes
    with pytest.raises(W.WeightsUnavailable) as err:
        W.resolve_weights("rave-unpaired")
    assert server.requests == ["/rave_unpaired.pth"] * 2
    target = W.cached_path(w)
    assert str(target) in str(err.value) and w.sha256 in str(err.value) and "2 downloads" in str(err.value)
    assert not target.exists() and not list(target.parent.glob("*.part"))
    fake = W.ReleasedWeights("fake", "rave", "unpaired", "x/y", "0" * 40, "m/fake.pth", "", hashlib.sha256(PAYLOAD).hexdigest(),
                             len(PAYLOAD), "test")
    server.files["/fake.pth"] = PAYLOAD
    server.corrupt_next = 1
    assert W.download(fake).read_bytes() == PAYLOAD
    assert server.requests[2:] == ["/fake.pth"] * 2


def test_evaluate_records_every_pair_problem_in_the_sidecar(tmp_path: Path) -> None:
    ds = _dataset(tmp_path / "ds", ["a", "b", "c"], gt=["a", "c"], gt_size={"c": (40, 64)})
    out = tmp_path / "scores" / "input" / "ds.csv"
    _evaluate(ds, out, ["psnr"])
    meta = json.loads(out.with_suffix(".json").read_text())
    assert sorted(f["image"] for f in meta["failed"]) == ["b", "c"]
    scores = read_scores(out)
    assert list(scores[scores["metric"] == "psnr"]["image"]) == ["a"] and meta["images"] == 3
    assert np.isfinite(read_scores(out)["value"]).all()

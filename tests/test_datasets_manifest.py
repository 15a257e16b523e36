"""sha256 manifests: write, read, verify; a corrupted file is reported by name."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from benchmark.cli import cli
from benchmark.data import DatasetError
from benchmark.data.manifest import build_manifest, read_manifest, verify_manifest, write_manifest


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    ds = tmp_path / "ds"
    for rel, data in {"test/input/a.png": b"aaa", "test/input/b.JPG": b"bbb", "test/gt/a.png": b"AAA",
                      "train/backlit/t.png": b"ttt"}.items():
        (ds / rel).parent.mkdir(parents=True, exist_ok=True)
        (ds / rel).write_bytes(data)
    (ds / "prepared.json").write_text("{}")  # not part of the layout
    return ds


def test_round_trip_is_sha256sum_compatible(dataset: Path, tmp_path: Path) -> None:
    entries = build_manifest(dataset)
    assert sorted(entries) == ["test/gt/a.png", "test/input/a.png", "test/input/b.JPG", "train/backlit/t.png"]
    assert entries["test/input/a.png"] == "9834876dcfb05cb167a5c24953eba58c4ac89b1adf57f28f2f9d09af107ee8f0"
    f = write_manifest(tmp_path / "m.sha256", entries, title="demo")
    text = f.read_text().splitlines()
    assert text[0] == "# demo" and text[2] == f"{entries['test/input/a.png']}  test/input/a.png"
    assert read_manifest(f) == entries
    assert verify_manifest(dataset, entries).ok


def test_corrupted_missing_and_extra_files_are_named(dataset: Path) -> None:
    entries = build_manifest(dataset)
    (dataset / "test/input/b.JPG").write_bytes(b"bbX")
    (dataset / "test/gt/a.png").unlink()
    (dataset / "test/gt/new.png").write_bytes(b"n")
    result = verify_manifest(dataset, entries)
    assert not result.ok
    assert result.corrupted == ["test/input/b.JPG"]
    assert result.missing == ["test/gt/a.png"] and result.extra == ["test/gt/new.png"]
    assert "corrupted (sha256 differs) 1: test/input/b.JPG" in result.summary()


def test_malformed_manifest_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.sha256"
    f.write_text("# ok\nnot-a-hash file.png\n")
    with pytest.raises(DatasetError, match=r"bad.sha256:2: expected"):
        read_manifest(f)


def test_cli_verify_writes_then_detects_corruption(dataset: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    m = tmp_path / "ds.sha256"
    out = runner.invoke(cli, ["datasets", "verify", str(dataset), "--write-manifest", str(m)])
    assert out.exit_code == 0, out.output
    assert "test: 2 inputs, 1 with ground truth" in out.output and "no ground truth for b.JPG" in out.output
    assert m.is_file() and len(read_manifest(m)) == 4
    ok = runner.invoke(cli, ["datasets", "verify", str(dataset), "--manifest", str(m)])
    assert ok.exit_code == 0 and "all 4 files match" in ok.output
    (dataset / "train/backlit/t.png").write_bytes(b"corrupt")
    bad = runner.invoke(cli, ["datasets", "verify", str(dataset), "--manifest", str(m)])
    assert bad.exit_code == 1 and "train/backlit/t.png" in bad.output

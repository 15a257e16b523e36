"""Released-weights registry: names, checksums, mirrors, offline errors, local paths."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from backlit_core.registry import UnknownNameError
from benchmark import weights as W


def test_released_models_pinned_with_checksums() -> None:
    assert len(W.RELEASED) == 10  # nine of the shared network, and Zero-DCE
    assert [w.name for w in W.RELEASED.values() if w.network != "enhance-net"] == ["zero-dce"]
    for w in W.RELEASED.values():
        assert len(w.sha256) == 64 and len(w.md5) == 32
        assert w.commit in w.url and w.url.startswith("https://raw.githubusercontent.com/")


def test_reference_files_match_registered_md5(reference_dir: Path) -> None:
    for w in W.RELEASED.values():
        path = W.resolve_weights(w.name, allow_download=False)
        assert hashlib.md5(path.read_bytes()).hexdigest() == w.md5


def test_unknown_name_suggests(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'rave-unpaired'"):
        W.resolve_weights("rave-unpaire")


def test_corrupt_mirror_copy_is_ignored_and_offline_error_says_where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "rave_unpaired.pth").write_bytes(b"\0" * W.RELEASED["rave-unpaired"].size)  # right size, wrong bytes
    monkeypatch.setenv("BACKLIT_BENCH_WEIGHTS", str(tmp_path / "cache"))
    monkeypatch.setenv("BACKLIT_BENCH_WEIGHTS_MIRRORS", str(mirror))
    monkeypatch.setattr(W, "REFERENCE_DIR", tmp_path / "reference")  # hide ../shared/reference
    monkeypatch.setattr(W.ReleasedWeights, "url", property(lambda self: "http://127.0.0.1:9/" + self.filename))
    with pytest.raises(W.WeightsUnavailable) as err:
        W.resolve_weights("rave-unpaired")
    msg = str(err.value)
    assert str(tmp_path / "cache" / "rave-unpaired" / "rave_unpaired.pth") in msg
    assert "sha256" in msg
    assert not (tmp_path / "cache").exists()  # the failed download leaves no empty folder


def test_local_paths_and_run_dirs(tmp_path: Path) -> None:
    ckpt = tmp_path / "run" / "enhancer.pth"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"x")
    assert W.resolve_weights(ckpt) == ckpt
    assert W.resolve_weights(ckpt.parent) == ckpt
    with pytest.raises(FileNotFoundError, match="without enhancer.pth"):
        W.resolve_weights(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        W.resolve_weights(str(tmp_path / "missing.pth"))


def test_paper_names_are_aliases(reference_dir: Path) -> None:
    from click.testing import CliRunner

    from benchmark.cli import cli
    from benchmark.system import System

    assert W.released("rave").name == "rave-unpaired" and W.released("latent-prompt").name == "latent-prompt-unpaired"
    assert W.released("clip-lit").name == "clip-lit"  # the CLIP-LIT paper's own model
    assert W.resolve_weights("rave", allow_download=False) == W.resolve_weights("rave-unpaired", allow_download=False)
    assert System.released("rave").name == "released-rave-unpaired"  # results live under the released name
    with pytest.raises(UnknownNameError, match="did you mean 'rave'"):
        W.released("ravee")
    listing = CliRunner().invoke(cli, ["weights", "list"]).output.splitlines()
    assert next(line for line in listing if line.startswith("rave-unpaired ")).endswith("alias: rave")
    assert next(line for line in listing if line.startswith("latent-prompt-unpaired ")).endswith("alias: latent-prompt")
    assert max(map(len, listing)) <= 120


def test_sys_info_names_cpu_and_local_weights(reference_dir: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from click.testing import CliRunner

    from benchmark.cli import cli

    monkeypatch.setenv("BACKLIT_BENCH_WEIGHTS", str(tmp_path / "cache"))
    monkeypatch.setenv("BACKLIT_BENCH_WEIGHTS_MIRRORS", "")
    info = json.loads(CliRunner().invoke(cli, ["sys-info"]).stdout)
    assert info["device"]["cpu_model"] and info["device"]["cpu_model"] != info["device"]["processor"]
    assert info["weights"]["rave-unpaired"] == {"file": str(reference_dir / "checkpoints/rave/rave_unpaired.pth"),
                                                "sha256": W.RELEASED["rave-unpaired"].sha256}
    assert len(info["weights"]) == len(W.RELEASED)  # every released model is in the reference copy
    monkeypatch.setattr(W, "REFERENCE_DIR", tmp_path / "reference")  # hide it
    none = json.loads(CliRunner().invoke(cli, ["sys-info"]).stdout)["weights"]
    assert none.startswith(f"none cached: no released model in {tmp_path / 'cache'}")

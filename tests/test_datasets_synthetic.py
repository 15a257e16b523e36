"""The embedded synthetic-backlit dataset: deterministic, looks backlit, prepared idempotently."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import benchmark.data as bd
from benchmark.cli import cli
from benchmark.data import synthetic as syn

SMALL = syn.GeneratorParams(seed=3, long_side=96, train_crops=1, unpaired_crops=1, test_crops=1)


def digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.png"))}


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    syn.generate(tmp_path / "a", SMALL)
    syn.generate(tmp_path / "b", SMALL)
    syn.generate(tmp_path / "c", syn.GeneratorParams(**{**SMALL.__dict__, "seed": 4}))
    a, b, c = digests(tmp_path / "a"), digests(tmp_path / "b"), digests(tmp_path / "c")
    assert a == b and len(a) == 3 * 3 + 6 * 2 + 1  # backlit+paired+unpaired per train photo, pairs per test photo, sheet
    assert all(a[k] != c[k] for k in a if k.startswith(("train/backlit", "test/input")))


def test_subject_darker_and_background_clipped() -> None:
    """On every photo and several seeds: the subject (mask > 0.5) is darker than in the ground truth
    (unless it is black there already) and part of the background is blown out (more clipped pixels
    than in the ground truth)."""
    def luma(a: np.ndarray) -> np.ndarray:
        return a.astype(float) @ [0.299, 0.587, 0.114]

    def clipped(a: np.ndarray, where: np.ndarray) -> float:
        return float((a.max(axis=2) >= 254)[where].mean())

    ratios = []
    for photo in syn.TRAIN_PHOTOS + syn.TEST_PHOTOS:
        for seed in range(3):
            rng = np.random.default_rng(seed)
            gt = syn.random_crop(syn.load_photo(photo), 256, rng)
            inp, mask = syn.backlight(gt, rng)
            assert inp.shape == gt.shape and inp.dtype == np.uint8 and mask.shape == gt.shape[:2]
            subject, background = mask > 0.5, mask < 0.5
            assert subject.mean() > 0.2 and background.mean() > 0.1, (photo, seed)
            if luma(gt)[subject].mean() > 60:  # a black subject (camera's coat) is lifted by the veiling flare
                ratios.append(luma(inp)[subject].mean() / luma(gt)[subject].mean())
                assert ratios[-1] < 0.9, (photo, seed, ratios[-1])
            assert clipped(inp, background) > clipped(gt, background) + 0.05, (photo, seed)
            assert luma(inp)[background].mean() > luma(inp)[subject].mean(), (photo, seed)
    assert len(ratios) >= 20 and np.mean(ratios) < 0.65  # about 1.5 stops darker on average in sRGB terms


def test_splits_are_disjoint_and_sized(tmp_path: Path) -> None:
    summary = syn.generate(tmp_path / "s", syn.GeneratorParams(long_side=128))
    counts = summary["counts"]
    assert counts == {"train/backlit": 21, "train/welllit-paired": 21, "train/welllit-unpaired": 15, "test/input": 12,
                      "test/gt": 12}
    s = tmp_path / "s"
    train = {p.name for p in (s / "train/backlit").iterdir()}
    assert train == {p.name for p in (s / "train/welllit-paired").iterdir()}
    test_scenes = {p.name.rsplit("-", 1)[0] for p in (s / "test/input").iterdir()}
    assert test_scenes == {"astronaut", "chelsea", "coffee", "grace-hopper", "garden", "snowy-highway"}
    assert {n.rsplit("-", 1)[0] for n in train} == {"motorcycle-left", "motorcycle-right", "camera"}
    scenes = json.loads((s / "scenes.json").read_text())
    assert len(scenes) == 12 and set(scenes.values()) == test_scenes  # 6 scenes of 2 crops: a t-test has 5 df
    paired = {hashlib.sha256(p.read_bytes()).digest() for p in (s / "train/welllit-paired").iterdir()}
    unpaired = {hashlib.sha256(p.read_bytes()).digest() for p in (s / "train/welllit-unpaired").iterdir()}
    assert not paired & unpaired  # the unpaired set never holds a training input's ground truth
    with Image.open(s / "train/backlit/motorcycle-left-01.png") as im:
        assert im.size == (128, 96) and im.mode == "RGB"
    with Image.open(s / "test/gt/grace-hopper-01.png") as im:
        assert im.size == (96, 128)
    with Image.open(s / "train/welllit-unpaired/camera-w01.png") as im:  # the grey photo, as RGB
        grey = np.asarray(im)
        assert grey.shape == (96, 128, 3) and (grey[..., 0] == grey[..., 2]).all()
    with Image.open(s / "contact_sheet.png") as im:
        assert im.width > 500 and im.height > 500


def test_prepare_api_is_idempotent(tmp_path: Path) -> None:
    dest = bd.prepare("synthetic-backlit", root=tmp_path)
    assert dest == tmp_path / "synthetic-backlit" and (dest / "contact_sheet.png").is_file()
    before = digests(dest)
    mtime = (dest / "prepared.json").stat().st_mtime_ns
    assert bd.prepare("synthetic-backlit", root=tmp_path) == dest
    assert (dest / "prepared.json").stat().st_mtime_ns == mtime and digests(dest) == before
    pairs = bd.test_pairs(dest)
    assert len(pairs) == 12 and all(g is not None for _, g in pairs)
    assert bd.status(bd.load_card("synthetic-backlit"), tmp_path).state == "present"
    other = bd.prepare("synthetic-backlit", root=tmp_path, seed=1, generator={"long_side": 96})
    assert other == dest and digests(dest) != before  # new parameters regenerate in place
    assert bd.status(bd.load_card("synthetic-backlit"), tmp_path).state == "stale"
    with Image.open(dest / "test/input/chelsea-01.png") as im:
        assert im.size == (96, 72)


def test_cli_synthesize(tmp_path: Path) -> None:
    out = CliRunner().invoke(cli, ["datasets", "synthesize", "--seed", "5", "--long-side", "96", "--out", str(tmp_path / "x")])
    assert out.exit_code == 0, out.output
    assert str(tmp_path / "x") in out.output and (tmp_path / "x/test/gt/snowy-highway-02.png").is_file()


def test_pyiqa_photos_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """The two photos from pyiqa's wheel: found through its RECORD, sha256 checked, absent or wrong is one clear line."""
    for name in syn.PYIQA_PHOTOS:
        path = syn.pyiqa_photo(name)
        assert path.is_file() and path.name == Path(syn.PYIQA_PHOTOS[name][0]).name
    assert syn.load_photo("garden").shape == (864, 1152, 3)
    monkeypatch.setitem(syn.PYIQA_PHOTOS, "garden", ("tests/test_efficiency_img_dir/gone.jpg", "x"))
    with pytest.raises(bd.DatasetError, match=r"pyiqa's tests/test_efficiency_img_dir/gone.jpg .*not found"):
        syn.load_photo("garden")
    monkeypatch.setitem(syn.PYIQA_PHOTOS, "garden", (syn.PYIQA_PHOTOS["snowy_highway"][0], "A" * 43))
    with pytest.raises(bd.DatasetError, match=r"frame_9ogwhvvy7gfj6jzh.jpg: sha256 Xt431H5d.* is not the one"):
        syn.load_photo("garden")


def test_bad_generator_params() -> None:
    with pytest.raises(ValueError, match="long_side"):
        syn.GeneratorParams(long_side=10)

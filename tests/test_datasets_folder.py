"""User folders: layout variants, upper-case extensions, duplicates, missing ground truth, sizes."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import benchmark.data as bd
from benchmark.data.folder import detect
from benchmark.data.layout import read_stamp
from benchmark.data.manifest import read_manifest
from benchmark.data.pairs import dedupe


def img(path: Path, size: tuple[int, int] = (16, 12), value: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((size[1], size[0], 3), value, np.uint8)
    Image.fromarray(arr).save(path, format="PNG" if path.suffix.lower() == ".png" else "JPEG")
    return path


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("low, high", [("low", "high"), ("backlit", "welllit"), ("input", "gt"), ("Low", "High")])
def test_pair_folder_variants(tmp_path: Path, low: str, high: str) -> None:
    src = tmp_path / "my photos"
    for stem in ("a", "b"):
        img(src / low / f"{stem}.jpg")
        img(src / high / f"{stem}.png")
    dest = bd.prepare(str(src), root=tmp_path / "data")
    assert dest == tmp_path / "data" / "my-photos"
    assert names(dest / "test/input") == ["a.jpg", "b.jpg"] and names(dest / "test/gt") == ["a.png", "b.png"]
    assert [(i.name, g.name) for i, g in bd.test_pairs(dest)] == [("a.jpg", "a.png"), ("b.jpg", "b.png")]


def test_input_only_and_flat_folders(tmp_path: Path) -> None:
    img(tmp_path / "lowonly" / "low" / "x.png")
    img(tmp_path / "flat" / "y.JPG")
    assert set(detect(tmp_path / "lowonly")) == {"test/input"}
    dest = bd.prepare(str(tmp_path / "flat"), root=tmp_path / "data")
    assert bd.test_pairs(dest) == [(dest / "test/input/y.JPG", None)]
    (tmp_path / "empty").mkdir()
    with pytest.raises(bd.DatasetError, match="low/ \\[\\+ high/\\]"):
        detect(tmp_path / "empty")


def test_train_and_test_subfolders(tmp_path: Path) -> None:
    src = tmp_path / "split"
    img(src / "train/low/t1.png"), img(src / "train/high/t1.png"), img(src / "train/welllit-unpaired/w.png")
    img(src / "test/backlit/q.png"), img(src / "test/welllit/q.png")
    dest = bd.prepare(str(src), root=tmp_path / "data")
    for target, expected in {"train/backlit": ["t1.png"], "train/welllit-paired": ["t1.png"],
                             "train/welllit-unpaired": ["w.png"], "test/input": ["q.png"], "test/gt": ["q.png"]}.items():
        assert names(dest / target) == expected


def test_ambiguous_folder_is_an_error(tmp_path: Path) -> None:
    img(tmp_path / "amb/low/a.png"), img(tmp_path / "amb/input/a.png")
    with pytest.raises(bd.DatasetError, match="ambiguous"):
        detect(tmp_path / "amb")


def test_upper_case_extensions_duplicates_and_missing_gt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = tmp_path / "baidlike"
    img(src / "input/0152(1).JPG"), img(src / "input/0152(2).JPG"), img(src / "input/0153.JPG")
    img(src / "input/0153 (3).JPG"), img(src / "input/0154.JPG"), img(src / "input/IMG_7.jpeg")
    img(src / "gt/0152.png"), img(src / "gt/0153.PNG"), img(src / "gt/img_7.png"), img(src / "gt/0999.png")
    with caplog.at_level(logging.WARNING, logger="benchmark.data"):
        dest = bd.prepare(str(src), root=tmp_path / "data")
    assert names(dest / "test/input") == ["0152(1).JPG", "0153.JPG", "0154.JPG", "IMG_7.jpeg"]
    # ground truth renamed to its input's stem, keeping its own extension
    assert names(dest / "test/gt") == ["0152(1).png", "0153.PNG", "IMG_7.png"]
    problems = read_stamp(dest)["problems"]["test"]
    assert problems["dropped_duplicates"] == ["0152(2).JPG -> kept 0152(1).JPG", "0153 (3).JPG -> kept 0153.JPG"]
    assert problems["missing_gt"] == ["0154.JPG"] and problems["orphan_gt"] == ["0999.png"]
    assert "0152(2).JPG" in caplog.text and "0154.JPG" in caplog.text
    pairs = {i.name: g.name if g else None for i, g in bd.test_pairs(dest)}
    assert pairs == {"0152(1).JPG": "0152(1).png", "0153.JPG": "0153.PNG", "0154.JPG": None, "IMG_7.jpeg": "IMG_7.png"}


def test_dedupe_prefers_plain_then_first_copy(tmp_path: Path) -> None:
    files = [tmp_path / n for n in ("a(2).png", "a(1).png", "a.png", "b(3).png", "b(2).png")]
    kept, dropped = dedupe(files)
    assert [k.name for k in kept] == ["a.png", "b(2).png"]
    assert sorted((d.name, k.name) for d, k in dropped) == [("a(1).png", "a.png"), ("a(2).png", "a.png"), ("b(3).png", "b(2).png")]


def test_test_pairs_on_raw_folders_reports_and_checks_sizes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ds = tmp_path / "ds"
    img(ds / "test/input/a.png"), img(ds / "test/input/a(2).png"), img(ds / "test/input/b.png")
    img(ds / "test/gt/a.png")
    with caplog.at_level(logging.WARNING, logger="benchmark.data"):
        pairs = bd.test_pairs(ds)
    assert [(i.name, g.name if g else None) for i, g in pairs] == [("a.png", "a.png"), ("b.png", None)]
    assert "no ground truth for b.png" in caplog.text and "dropped duplicate a(2).png" in caplog.text
    img(ds / "test/gt/b.png", size=(20, 12))
    with pytest.raises(bd.DatasetError) as err:
        bd.test_pairs(ds)
    assert str(ds / "test/input/b.png") in str(err.value) and str(ds / "test/gt/b.png") in str(err.value)
    assert len(bd.test_pairs(ds, check_sizes=False)) == 2


def test_exif_rotation_counts_for_size_check(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    img(ds / "test/gt/r.png", size=(12, 16))
    im = Image.fromarray(np.zeros((12, 16, 3), np.uint8))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90: displayed as 12 x 16
    (ds / "test/input").mkdir(parents=True)
    im.save(ds / "test/input/r.jpg", exif=exif)
    assert len(bd.test_pairs(ds)) == 1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_gives_the_displayed_size(tmp_path: Path, orientation: int) -> None:
    from benchmark.data.pairs import image_size

    im = Image.fromarray(np.zeros((12, 16, 3), np.uint8))  # stored 16 wide, 12 high
    exif = im.getexif()
    exif[0x0112] = orientation
    im.save(tmp_path / "r.jpg", exif=exif)
    assert image_size(tmp_path / "r.jpg") == ((12, 16) if orientation >= 5 else (16, 12))  # 5-8 transpose


def test_an_unreadable_header_names_the_file(tmp_path: Path) -> None:
    from benchmark.data.pairs import image_size

    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(bd.DatasetError, match=r"broken\.png: cannot read image header \("):
        image_size(tmp_path / "broken.png")


def test_dedupe_keeps_files_in_name_order_across_folders(tmp_path: Path) -> None:
    files = [tmp_path / "z" / "a.png", tmp_path / "y" / "b.png", tmp_path / "x" / "c.png"]
    assert dedupe(files)[0] == files  # by file name, not by path


def test_pair_problems_are_logged_with_the_dataset_name(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ds = tmp_path / "my-set"
    img(ds / "test/input/a.png"), img(ds / "test/input/b.png"), img(ds / "test/gt/a.png")
    with caplog.at_level(logging.WARNING, logger="benchmark.data"):
        bd.test_pairs(ds)
    assert caplog.messages == ["my-set: no ground truth for b.png (scored without full-reference metrics)"]


def test_prepare_is_idempotent_and_notices_changes(tmp_path: Path) -> None:
    src = tmp_path / "shots"
    img(src / "low/a.png"), img(src / "high/a.png")
    dest = bd.prepare(str(src), root=tmp_path / "data")
    stamp = (dest / "prepared.json").stat().st_mtime_ns
    assert bd.prepare(str(src), root=tmp_path / "data") == dest
    assert (dest / "prepared.json").stat().st_mtime_ns == stamp
    img(src / "low/b.png"), img(src / "high/b.png")
    bd.prepare(str(src), root=tmp_path / "data")
    assert names(dest / "test/input") == ["a.png", "b.png"]


def test_folder_named_like_a_card_is_refused(tmp_path: Path) -> None:
    img(tmp_path / "baid/low/a.png")
    with pytest.raises(bd.DatasetError, match="'baid' is a dataset card"):
        bd.prepare(str(tmp_path / "baid"), root=tmp_path / "data")


def test_folder_card_on_reference_data(reference_dir: Path, tmp_path: Path) -> None:
    dest = bd.prepare("sice-pairs", root=tmp_path)
    pairs = bd.test_pairs(dest)
    assert len(pairs) == 120 and all(g is not None and g.stem == i.stem for i, g in pairs)
    samples = bd.prepare("backlit-samples", root=tmp_path)
    assert len(bd.test_pairs(samples)) == 6 and not (samples / "test/gt").exists()


def test_one_detector_for_every_command(tmp_path: Path) -> None:
    from benchmark.evaluate import resolve_test_set

    img(tmp_path / "mine/Input/a.png"), img(tmp_path / "mine/TARGET/a.png")  # evaluate's old names, any case
    assert detect(tmp_path / "mine") == {"test/input": tmp_path / "mine/Input", "test/gt": tmp_path / "mine/TARGET"}
    test = resolve_test_set(tmp_path / "mine")
    assert (test.inputs, test.gt) == (tmp_path / "mine/Input", tmp_path / "mine/TARGET")
    img(tmp_path / "shots/backlit/b.png"), img(tmp_path / "shots/welllit/b.png")  # prepare's names
    assert resolve_test_set(tmp_path / "shots").gt == tmp_path / "shots/welllit"
    img(tmp_path / "flat/c.JPG")
    assert resolve_test_set(tmp_path / "flat").inputs == tmp_path / "flat"
    img(tmp_path / "trainonly/train/low/t.png")
    with pytest.raises(FileNotFoundError, match="no test images found \\(only train/backlit\\)"):
        resolve_test_set(tmp_path / "trainonly")


def test_datasets_verify_reads_user_layouts_and_names_size_mismatches(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from benchmark.cli import cli

    img(tmp_path / "pairs/low/a.jpg"), img(tmp_path / "pairs/low/b.jpg")
    img(tmp_path / "pairs/high/a.jpg"), img(tmp_path / "pairs/high/b.jpg", size=(20, 12))
    out = CliRunner().invoke(cli, ["datasets", "verify", str(tmp_path / "pairs")])
    assert out.exit_code == 1
    assert f"test/input               <- {tmp_path / 'pairs/low'} (2 images)" in out.output
    assert f"size mismatch: {tmp_path / 'pairs/low/b.jpg'} is 16x12 but its ground truth " \
           f"{tmp_path / 'pairs/high/b.jpg'} is 20x12 (width x height)" in out.output
    img(tmp_path / "pairs/high/b.jpg")
    m = tmp_path / "pairs.sha256"
    ok = CliRunner().invoke(cli, ["datasets", "verify", str(tmp_path / "pairs"), "--write-manifest", str(m)])
    assert ok.exit_code == 0, ok.output
    assert sorted(read_manifest(m)) == ["test/gt/a.jpg", "test/gt/b.jpg", "test/input/a.jpg", "test/input/b.jpg"]
    dest = bd.prepare(str(tmp_path / "pairs"), root=tmp_path / "data")  # one manifest for the folder and its copy
    again = CliRunner().invoke(cli, ["datasets", "verify", str(dest), "--manifest", str(m)])
    assert again.exit_code == 0 and "all 4 files match" in again.output


def test_reference_copies_are_found_by_datasets_list(reference_dir: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from benchmark.cli import cli

    monkeypatch.setenv("BACKLIT_BENCH_DATA", str(tmp_path))  # nothing prepared
    out = CliRunner().invoke(cli, ["datasets", "list"]).output
    for name in ("sice-pairs", "backlit-samples"):
        assert next(line for line in out.splitlines() if line.startswith(name)).split()[2] == "ready"
        assert f"found at {reference_dir / name} (commands read it from there)" in out
    verify = CliRunner().invoke(cli, ["datasets", "verify", "sice-pairs"])
    assert verify.exit_code == 0 and f"<- {reference_dir / 'sice-pairs' / 'low'} (120 images)" in verify.output

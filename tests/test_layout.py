"""The standard dataset layout: which folders a glob finds, how a dataset is built (counts, sources, errors,
what a failed build leaves) and how an old copy is replaced."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark.data.errors import DatasetError
from benchmark.data.layout import STAMP, find_dirs, materialise, replace_dir, subdirs


def img(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 4, 3), 9, np.uint8)).save(path)
    return path


def rel(root: Path, found: list[Path]) -> list[str]:
    return [p.relative_to(root).as_posix() for p in found]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    for d in ("Low", "a/b/low", "a/lox", "a/lower", ".hidden/low", "__MACOSX/low", "x/.git/low"):
        (root / d).mkdir(parents=True)
    return root


@pytest.mark.parametrize(("pattern", "expected"), [
    ("**/low", ["Low", "a/b/low"]),  # ** spans zero or more folders; case-insensitive; hidden/skipped folders not
    ("./low/", ["Low"]),  # "." and empty parts are nothing
    ("a/lo?", ["a/lox"]),  # ? is one character
    ("a/l*r", ["a/lower"]),  # * is any run within one folder name
    ("a/lo", []),
    (".", [""]),  # the root itself
])
def test_globs_find_the_folders_they_name(tree: Path, pattern: str, expected: list[str]) -> None:
    found = rel(tree, find_dirs(tree, pattern))
    assert sorted(f if f != "." else "" for f in found) == expected


def test_the_search_stops_at_its_depth(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*[f"d{k}" for k in range(1, 12)])
    deep.mkdir(parents=True)
    found = find_dirs(tmp_path, "**/d*")
    assert max(len(p.relative_to(tmp_path).parts) for p in found) == 9  # default max_depth 8: folders 1-9
    assert rel(tmp_path, find_dirs(tmp_path, "**/d*", max_depth=1)) == ["d1", "d1/d2"]


def test_subdirs_lists_visible_folders_to_a_depth(tmp_path: Path) -> None:
    for d in ("Low", "a/b/c/d", ".hidden", "a/.cache"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "a" / "file.png").write_bytes(b"")
    assert subdirs(tmp_path, max_depth=2) == ["Low", "a", "a/b"]
    assert subdirs(tmp_path) == ["Low", "a", "a/b", "a/b/c"]  # default depth 3
    assert subdirs(tmp_path / "absent") == []
    for k in range(45):
        (tmp_path / "many" / f"f{k:02d}").mkdir(parents=True)
    assert len(subdirs(tmp_path / "many")) == 40  # an error message names at most 40


def _sources(tmp_path: Path) -> dict[str, Path]:
    src = tmp_path / "src"
    img(src / "in/a.png"), img(src / "in/b.png"), img(src / "in/c.png")
    img(src / "gt/a.png"), img(src / "gt/B.jpg")
    img(src / "other/u1.png"), img(src / "other/u2.png")
    return {"test/input": src / "in", "test/gt": src / "gt", "train/welllit-unpaired": src / "other"}


def test_materialise_counts_pairs_and_records_sources(tmp_path: Path) -> None:
    dest = tmp_path / "data" / "mine"
    stale = dest.with_name(".mine.building")
    img(stale / "test/input/leftover.png")  # a killed build's folder is not built upon
    report = materialise(_sources(tmp_path), dest, extra={"card": "folder"})
    assert report["counts"] == {"test/input": 3, "test/gt": 2, "train/welllit-unpaired": 2}
    assert report["sources"] == {"test/input": "../src/in", "test/gt": "../src/gt",
                                 "train/welllit-unpaired": "../src/other"}
    assert report["card"] == "folder" and report["problems"]["test"]["missing_gt"] == ["c.png"]
    assert json.loads((dest / STAMP).read_text()) == report
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*.*") if p.name != STAMP) == [
        "test/gt/a.png", "test/gt/b.jpg", "test/input/a.png", "test/input/b.png", "test/input/c.png",
        "train/welllit-unpaired/u1.png", "train/welllit-unpaired/u2.png"]
    assert not stale.exists()


def test_materialise_copies_where_it_cannot_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(src: object, dst: object) -> None:
        raise OSError("cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    dest = tmp_path / "mine"
    folders = _sources(tmp_path)
    materialise(folders, dest)
    copied = dest / "test/input/a.png"
    assert copied.read_bytes() == (folders["test/input"] / "a.png").read_bytes()
    assert copied.stat().st_ino != (folders["test/input"] / "a.png").stat().st_ino


def test_unknown_targets_are_named_with_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as err:
        materialise({"test/inputs": tmp_path, "test/input": tmp_path}, tmp_path / "d")
    assert str(err.value) == (f"{tmp_path / 'd'}: unknown layout targets ['test/inputs'] (valid: train/backlit, "
                              "train/welllit-paired, train/welllit-unpaired, test/input, test/gt)")


@pytest.mark.parametrize("given", ["empty input", "ground truth alone"])
def test_a_target_without_images_fails_and_leaves_nothing(tmp_path: Path, given: str) -> None:
    folders = _sources(tmp_path)
    if given == "empty input":
        folders["test/input"] = tmp_path / "nothing"
        folders["test/input"].mkdir()
        del folders["train/welllit-unpaired"]
        empty = ["test/input", "test/gt"]
    else:
        del folders["test/input"]
        empty = ["test/gt"]
    with pytest.raises(DatasetError) as err:
        materialise(folders, tmp_path / "mine")
    looked = ", ".join(str(folders[t]) for t in empty)
    assert str(err.value) == f"mine: no images for {', '.join(empty)} (looked in {looked})"
    assert not (tmp_path / "mine").exists() and not (tmp_path / ".mine.building").exists()


def test_replace_dir_swaps_a_prepared_copy_and_refuses_anything_else(tmp_path: Path) -> None:
    dest, new = tmp_path / "d", tmp_path / "new"
    img(new / "x.png")
    replace_dir(new, dest)  # nothing there yet
    assert (dest / "x.png").is_file() and not new.exists()
    (dest / STAMP).write_text("{}")
    img(tmp_path / ".d.old" / "left.png")  # a swap killed half-way left its old copy
    img(new / "y.png")
    replace_dir(new, dest)  # a prepared copy is replaced whole
    assert sorted(p.name for p in dest.iterdir()) == ["y.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no .d.old left
    img(new / "z.png")
    with pytest.raises(DatasetError) as err:  # y.png but no stamp: not ours
        replace_dir(new, dest)
    assert str(err.value) == (f"{dest}: refusing to replace a non-empty folder that was not prepared by bench "
                              f"(no {STAMP}); move it away or choose another location")
    assert sorted(p.name for p in dest.iterdir()) == ["y.png"] and not new.exists()
    (tmp_path / "empty").mkdir()
    img(new / "z.png")
    replace_dir(new, tmp_path / "empty")  # an empty folder may be replaced
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == ["z.png"]

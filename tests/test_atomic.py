"""Atomic writes: the exact bytes written, what a failed or killed writer leaves, and reading back."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch

from backlit_core.atomic import atomic_path, read_json, remove_stale_temporaries, save_torch, write_json, write_text


def test_write_json_is_sorted_indented_and_stringifies_paths(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "record.json"  # the folder is created
    write_json(target, {"b": [1, 2], "a": Path("x/y"), "c": {"z": 1.5, "y": None}})
    assert target.read_text() == ('{\n  "a": "x/y",\n  "b": [\n    1,\n    2\n  ],\n'
                                  '  "c": {\n    "y": null,\n    "z": 1.5\n  }\n}\n')
    assert read_json(target) == {"a": "x/y", "b": [1, 2], "c": {"y": None, "z": 1.5}}


@pytest.mark.parametrize(("content", "expected"), [(None, {}), ("{not json", {}), ("[1, 2]", {}), ('"text"', {}),
                                                   ('{"k": 1}', {"k": 1})])
def test_read_json_gives_an_object_or_nothing(tmp_path: Path, content: str | None, expected: dict) -> None:
    path = tmp_path / "f.json"
    if content is not None:
        path.write_text(content)
    assert read_json(path) == expected


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    write_text(target, "old\n")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_written_files_get_the_usual_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600


def test_stale_temporaries_of_one_target_or_all_are_removed(tmp_path: Path) -> None:
    for name in (".scores.abc.tmp.csv", ".scores.def.tmp.csv", ".log[1].xyz.tmp", ".other.q1.tmp.json", "scores.csv",
                 ".notes.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / ".dir.abc.tmp").mkdir()  # a folder is never a writer's temporary
    removed = remove_stale_temporaries(tmp_path, "scores")
    assert sorted(p.name for p in removed) == [".scores.abc.tmp.csv", ".scores.def.tmp.csv"]
    assert sorted(p.name for p in remove_stale_temporaries(tmp_path, "log[1]")) == [".log[1].xyz.tmp"]  # escaped
    assert [p.name for p in remove_stale_temporaries(tmp_path)] == [".other.q1.tmp.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".dir.abc.tmp", ".notes.txt", "scores.csv"]


def test_save_torch_gives_the_same_bytes_under_any_name_and_loads(tmp_path: Path) -> None:
    state = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "step": 7}
    save_torch(tmp_path / "a.pt", state)
    save_torch(tmp_path / "sub" / "b.pt", state)
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "a.pt", tmp_path / "sub" / "b.pt")]
    assert digest[0] == digest[1]
    loaded = torch.load(tmp_path / "a.pt", weights_only=True)
    assert loaded["step"] == 7 and torch.equal(loaded["w"], state["w"])
    assert not list(tmp_path.glob(".*"))

"""Dataset cards: every shipped card validates; bad cards name the file and the field."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import benchmark.data as bd
from backlit_core.registry import UnknownNameError
from benchmark.cli import cli
from benchmark.data.cards import TARGETS, load_card_file

EXPECTED = {"baid", "baid-380", "backlit300", "div2k", "lsrw-huawei", "lsrw-nikon", "lol-v1", "synthetic-backlit",
            "sice-pairs", "backlit-samples"}


def test_every_shipped_card_loads_and_validates(project_root: Path) -> None:
    cards = {c.name: c for c in bd.list_cards()}
    assert EXPECTED <= set(cards)
    for card in cards.values():
        assert card.file == project_root / "datasets" / f"{card.name}.yaml"
        assert card.citation and card.licence and card.description and card.prepare
        assert set(card.targets) <= set(TARGETS)
        for rule in card.layout:  # every layout rule reads a folder that some source fills
            assert card.sources_for(rule.group), (card.name, rule.target)
    assert cards["lsrw-huawei"].kind == cards["lsrw-nikon"].kind == "manual"
    assert {s.type for s in cards["lsrw-nikon"].sources} == {"baidu"}
    div2k = cards["div2k"].sources[0]
    assert div2k.type == "http" and div2k.url.startswith("https://data.vision.ee.ethz.ch/cvl/DIV2K/")
    assert div2k.sha256 and div2k.size == 3530603713
    assert set(cards["baid"].targets) == set(TARGETS)
    assert cards["backlit300"].targets == ("test/input",)  # no ground truth


def test_datasets_folder_is_not_a_python_package(project_root: Path) -> None:
    assert not list((project_root / "datasets").glob("*.py"))


def test_unknown_card_name_suggests_the_closest() -> None:
    with pytest.raises(UnknownNameError) as err:
        bd.load_card("baid-38")
    assert "did you mean 'baid-380'" in str(err.value) and "lsrw-nikon" in str(err.value)
    with pytest.raises(UnknownNameError):
        bd.prepare("no-such-dataset")


def _good() -> dict:
    return {
        "name": "mine", "title": "t", "kind": "download", "description": "d", "citation": "c", "licence": "l",
        "prepare": "p",
        "sources": [{"id": "web", "type": "http", "url": "http://127.0.0.1/x.zip", "filename": "x.zip", "into": "mine"}],
        "layout": {"test/input": {"from": "mine", "paths": ["**/low"]}, "test/gt": {"from": "mine", "paths": "**/high"}},
    }


def _write(tmp_path: Path, data: dict, name: str = "mine") -> Path:
    f = tmp_path / f"{name}.yaml"
    f.write_text(yaml.safe_dump(data, sort_keys=False))
    return f


def test_minimal_card_is_valid(tmp_path: Path) -> None:
    card = load_card_file(_write(tmp_path, _good()))
    assert card.targets == ("test/input", "test/gt") and card.layout[1].paths == ("**/high",)


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d.pop("citation"), "citation"),
    (lambda d: d.update(licence=""), "licence"),
    (lambda d: d.update(colour="red"), "colour"),
    (lambda d: d.update(kind="torrent"), "kind"),
    (lambda d: d.update(name="other"), "name"),
    (lambda d: d.update(name="Bad_Name"), "name"),
    (lambda d: d["sources"][0].update(type="ftp"), "sources[0].type"),
    (lambda d: d["sources"][0].pop("url"), "sources[0].url"),
    (lambda d: d["sources"][0].update(sha256="abc"), "sources[0].sha256"),
    (lambda d: d["sources"][0].update(size=-3), "sources[0].size"),
    (lambda d: d["layout"].update({"train/extra": {"from": "mine", "paths": ["x"]}}), "layout.train/extra"),
    (lambda d: d["layout"]["test/input"].update({"from": "elsewhere"}), "layout.test/input.from"),
    (lambda d: d["layout"]["test/input"].update({"paths": ["../up"]}), "layout.test/input.paths"),
    (lambda d: d["layout"].pop("test/input"), "layout.test/gt"),
    (lambda d: d["sources"][0].update(type="baidu", code="1234"), "kind"),
    (lambda d: d.update(expect={"test/input": 0}), "expect"),
])
def test_bad_card_names_file_and_field(tmp_path: Path, mutate, field: str) -> None:
    data = _good()
    mutate(data)
    f = _write(tmp_path, data)
    with pytest.raises(bd.CardError) as err:
        load_card_file(f)
    assert str(err.value).startswith(f"{f}: {field}:"), str(err.value)


def test_bad_synthetic_generator_and_yaml(tmp_path: Path) -> None:
    data = {**_good(), "kind": "synthetic", "generator": {"seed": 0, "long_sid": 3}}
    del data["sources"], data["layout"]
    f = _write(tmp_path, data)
    with pytest.raises(bd.CardError, match=r"mine.yaml: generator.long_sid: unknown parameter"):
        load_card_file(f)
    f.write_text("name: [unclosed\n")
    with pytest.raises(bd.CardError, match="not valid YAML"):
        load_card_file(f)


def test_cli_list_and_show(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKLIT_BENCH_DATA", str(tmp_path))
    runner = CliRunner()
    out = runner.invoke(cli, ["datasets", "list"])
    assert out.exit_code == 0, out.output
    lines = {line.split()[0]: line.split()[2] for line in out.output.splitlines() if line and not line.startswith(" ")}
    assert lines["synthetic-backlit"] == "missing" and lines["lsrw-huawei"] == "manual" and lines["div2k"] == "missing"
    assert "pan.baidu.com/s/1UxFllrtRSh4E8ir8LdTb9w" in out.output and "extraction code wmr1" in out.output
    assert f"{tmp_path}/raw/lsrw/" in out.output and "**/Eval/Huawei/low  -> test/input" in out.output
    assert "bench datasets prepare div2k  (downloads https://data.vision.ee.ethz.ch" in out.output
    show = runner.invoke(cli, ["datasets", "show", "baid"])
    assert show.exit_code == 0 and "0152(2).png" in show.output and "q0qh" in show.output
    bad = runner.invoke(cli, ["datasets", "show", "baidd"])
    assert bad.exit_code != 0 and "did you mean 'baid'" in bad.output

"""The fidelity switches: defaults are the upstream code's, values are validated, the ledger is complete."""
from __future__ import annotations

from dataclasses import fields

import pytest

from backlit_core.registry import UnknownNameError
from methods.fidelity import LEDGER, Fidelity


def test_defaults_are_upstream_and_ledger_covers_every_switch() -> None:
    fid = Fidelity()
    assert [f.name for f in fields(Fidelity)] == [e.name for e in LEDGER]
    for entry in LEDGER:
        assert getattr(fid, entry.name) == entry.upstream != entry.alternative
        assert entry.paper and entry.description and entry.measured_effect is None
    assert fid.asdict() == {"ranking_order": "new-then-old", "snapshot": "best-running-loss",
                            "vocabulary": "decoded-text", "ssim_channel": "y", "clip_precision": "identity-fp16",
                            "warmup_monitor": "pyiqa-y", "resize_filter": "lanczos"}
    alternative = Fidelity.from_dict({e.name: e.alternative for e in LEDGER})
    assert Fidelity.from_dict(alternative.asdict()) == alternative and Fidelity.coerce(alternative) is alternative
    assert Fidelity.coerce(None) == fid == Fidelity.from_dict({})


def test_invalid_switches_list_the_valid_values() -> None:
    with pytest.raises(ValueError, match="fidelity setting snapshot must be one of best-running-loss, last; got 'best'"):
        Fidelity.from_dict({"snapshot": "best"})
    with pytest.raises(UnknownNameError, match="unknown fidelity setting 'ranking'; did you mean 'ranking_order'"):
        Fidelity.from_dict({"ranking": "old-then-new"})


def test_identity_precision_and_ssim_metric() -> None:
    fid = Fidelity()
    assert fid.identity_precision("clip:RN101:openai", "cuda") == "fp16"
    assert fid.identity_precision("clip:RN101:openai", "cpu") == "fp32"  # upstream never ran on CPU
    assert fid.identity_precision("effnet-lite0", "cuda") == "fp32"
    assert Fidelity(clip_precision="fp32").identity_precision("clip:RN101:openai", "cuda") == "fp32"
    assert fid.ssim_metric == "ssim" and Fidelity(ssim_channel="rgb").ssim_metric == "ssim@rgb"


def test_docs_table_lists_every_switch(project_root) -> None:
    text = (project_root / "docs" / "fidelity.md").read_text()
    ledger = text[text.index("| switch | upstream code"):].split("\n\n")[0]  # the first table
    rows = [line for line in ledger.splitlines() if line.startswith("| `")]
    cells = [[c.strip().strip("`") for c in row.strip("|").split("|")][:3] for row in rows]
    assert cells == [[e.name, e.upstream, e.alternative] for e in LEDGER]


def test_ledger_shows_measured_effects_with_their_run() -> None:
    from benchmark.report.build import fidelity_table

    measured = {"environment": {"git_commit": "abc1234", "time": "2026-12-05T01:00:00", "cpu": "Some CPU", "cores": 2},
                "switches": {"snapshot": {"effect": "last, seed 0: latent-prompt: PSNR +0.10 dB"}}}
    table = fidelity_table({"fidelity": {"snapshot": "last"}}, measured)
    rows = {row[0]: row for row in table.rows}
    assert rows["snapshot"][1] == "last (differs from upstream)"
    assert rows["snapshot"][-1] == "last, seed 0: latent-prompt: PSNR +0.10 dB"
    assert rows["vocabulary"][-1] == "not measured"
    assert any("commit abc1234" in note for note in table.notes)
    assert not any("Measured effects" in note for note in fidelity_table(None).notes)

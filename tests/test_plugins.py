"""Every registered plugin honours its contract, cheaply (seconds each).

- methods: each builds, trains two steps on tiny data (the CLIP-guided ones with effnet-lite0, or
  the random tiny CLIP where a text tower is needed), writes the run files, resumes from its
  checkpoint, and its weights (or, training-free, its operator) enhance through `bench enhance`'s
  loop; training-free methods refuse training;
- metrics: each loads with its pyiqa direction and protocol and scores a real photo (a
  full-reference one prefers the reference to a distorted copy), or is unavailable with a reason;
- dataset cards: each loads under its own name and reports a status with what to do; the ones
  that can be had offline prepare into the standard layout with matched test pairs.
"""
from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from backlit_core.image_io import list_images, load_image
from benchmark.data import load_card, prepare, status, test_pairs
from benchmark.data.cards import TARGETS, card_names
from benchmark.data.prepare import card_folder
from benchmark.enhance import enhance_folder, open_system
from benchmark.metrics import SHARED_METRIC_WEIGHTS, Metric, Pair, get_spec, load_metric, metric_names
from methods.registry import METHODS
from methods.train_api import train_method

KINDS = ("clip-guided", "trained baseline", "training-free")
TINY_GENERATOR = {"long_side": 64, "train_crops": 1, "unpaired_crops": 1, "test_crops": 1}
TINY_SCHEDULE = {  # two iterations: for the prompt methods one CE + one warm-up step, for RAVE warm-up + guided
    "clip-guided": {"crop": 32, "rank_size": 32, "batch_size": 2, "prompt_batch_size": 4, "ce_iters": 1,
                    "warmup_iters": 1, "enhancer_iters": 1, "prompt_iters": 1, "checkpoint_every": 1},
    "trained baseline": {"crop": 32, "batch_size": 2, "checkpoint_every": 1},
}
RUN_FILES = ("checkpoint.pt", "enhancer.pth", "train_log.csv", "train_summary.json")
STATES = ("present", "stale", "ready", "missing", "manual")


@pytest.fixture(scope="module", autouse=True)
def embedding_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BACKLIT_BENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded synthetic dataset at 64 px: 3 backlit / 3 well-lit training images, 6 test pairs."""
    return prepare("synthetic-backlit", root=tmp_path_factory.mktemp("data"), generator=TINY_GENERATOR)


def _check_enhances(weights: str | Path, tiny: Path, out: Path) -> None:
    engine, _ = open_system(weights, device="cpu")
    image = load_image(tiny / "test" / "input" / "astronaut-01.png")
    result = engine(image)
    assert result.shape == image.shape and result.dtype == torch.float32 and result.device.type == "cpu"
    assert torch.isfinite(result).all() and 0 <= result.min() and result.max() <= 1
    summary = enhance_folder(weights, tiny / "test" / "input", out, device="cpu", progress=False)
    assert len(summary["done"]) == 6 and not summary["failed"]


@pytest.mark.parametrize("name", METHODS.names())
def test_method_plugin(name: str, tiny: Path, tmp_path: Path) -> None:
    cls = METHODS.get(name)
    assert cls.name == name and cls.kind in KINDS and isinstance(cls.needs_text, bool) and cls.source
    backlit, welllit, run = tiny / "train" / "backlit", tiny / "train" / "welllit-unpaired", tmp_path / "run"
    if cls.kind == "training-free":
        with pytest.raises(ValueError, match="training-free"):
            train_method(name, backlit, welllit, run, progress=False)
        _check_enhances(name, tiny, tmp_path / "out")
        return
    if cls.needs_text:  # refused, with the reason, by an image-only encoder
        refused = train_method(name, backlit, welllit, tmp_path / "refused", encoder="effnet-lite0", progress=False)
        assert refused["status"] == "skipped" and "text encoder" in refused["reason"]
    kw = {"encoder": "tiny-clip-random" if cls.needs_text else "effnet-lite0", "identity_encoder": "effnet-lite0",
          "iters": 2, "overrides": TINY_SCHEDULE[cls.kind], "progress": False,
          "fidelity": {"clip_lit_start": "scratch"}}  # a plugin's mechanics from scratch (no released init here)
    summary = train_method(name, backlit, welllit, run, **kw)
    assert summary["status"] == "done", summary.get("reason")
    assert summary["iterations"]["total"] == 2 and math.isfinite(summary["final_loss"])
    assert all((run / f).is_file() for f in RUN_FILES)
    with open(run / "train_log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["iter"] for r in rows] == ["1", "2"] and all(math.isfinite(float(r["loss"])) for r in rows)
    saved = torch.load(run / "enhancer.pth", weights_only=True)
    again = train_method(name, backlit, welllit, run, resume=True, **kw)  # from checkpoint.pt: nothing left to do
    assert again["iterations"]["total"] == 2 and again["final_loss"] == summary["final_loss"]
    assert all(torch.equal(v, torch.load(run / "enhancer.pth", weights_only=True)[k]) for k, v in saved.items())
    _check_enhances(run, tiny, tmp_path / "out")


THROWAWAY_PLUGIN = '''"""A throwaway CLIP-guided method with a setting of its own: the mean of the output's
embedding is pulled to ``target``."""
import torch

from methods.base import GuidanceMethod
from methods.method_parameters import Parameter


class MeanTarget(GuidanceMethod):
    name = "mean-target"
    source = "tests/test_plugins.py"
    paper_total_iters = 2
    method_parameters = (Parameter("target", 0.5, float, "the embedding mean the output is pulled to"),)

    def guidance_loss(self, emb: torch.Tensor) -> torch.Tensor:
        return ((emb.mean(dim=1) - self.settings["target"]) ** 2).mean()


METHOD = MeanTarget
'''


def test_a_plugin_in_a_new_file_brings_its_own_setting(tiny: Path, tmp_path: Path, monkeypatch) -> None:
    """docs/methods.md's worked example: a method with a setting is one plugin file plus its
    params.yaml entry; the registry finds it, ``train.<method>.<setting>`` reaches it, the run
    records it, and it acts (same seed, only ``target`` differs: the logged guidance
    (m - target)^2 moves by exactly the targets' difference in sqrt)."""
    import yaml

    import methods.plugins
    from methods import registry

    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "mean_target.py").write_text(THROWAWAY_PLUGIN)
    monkeypatch.setattr(methods.plugins, "__path__", [*methods.plugins.__path__, str(folder)])
    monkeypatch.setattr(METHODS, "_entries", registry._discover()._entries)
    assert "mean-target" in METHODS.names() and METHODS.get("mean-target").kind == "clip-guided"

    guided = {**TINY_SCHEDULE["clip-guided"], "warmup_iters": 1, "enhancer_iters": 2}
    logs = {}
    for target in (2.0, 3.0):
        params = yaml.safe_load(f"train:\n  mean-target: {{target: {target}}}\n")
        run = tmp_path / f"run-{target}"
        summary = train_method("mean-target", tiny / "train" / "backlit", tiny / "train" / "welllit-unpaired", run,
                               iters=3, overrides={**guided, **params["train"]["mean-target"]}, progress=False)
        assert summary["status"] == "done" and summary["method_settings"] == {"target": target}
        with open(run / "train_log.csv", newline="") as f:
            logs[target] = [float(r["guidance"]) for r in csv.DictReader(f) if r["phase"] == "enhance"]
    assert len(logs[2.0]) == 2
    assert math.sqrt(logs[3.0][0]) - math.sqrt(logs[2.0][0]) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="training setting target must be a number, got 'high'"):
        train_method("mean-target", tiny / "train" / "backlit", tiny / "train" / "welllit-unpaired", tmp_path / "bad",
                     overrides={"target": "high"}, progress=False)


def test_shared_training_modules_name_no_method(project_root: Path) -> None:
    """A method carries its settings: the schedule, the context and the loop know no method by name."""
    names = set(METHODS.names()) | {n.replace("-", "_") for n in METHODS.names()} | {"latent", "rave"}
    for module in ("schedule", "guidance_context", "guided_training"):
        text = (project_root / "methods" / f"{module}.py").read_text().lower()
        assert not [n for n in names if n in text], module


@pytest.fixture(scope="module")
def photo_pair(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real photo (scikit-image's astronaut, 192 px), a distorted copy (noise + darkening) and both as PNGs."""
    from skimage import data, transform

    ref = transform.resize(data.astronaut(), (192, 192), anti_aliasing=True)
    rng = np.random.default_rng(0)
    distorted = np.clip(0.6 * ref + rng.normal(0, 0.08, ref.shape), 0, 1)
    d = tmp_path_factory.mktemp("metric")
    files = {"ref": d / "ref.png", "distorted": d / "distorted.png"}
    for key, arr in (("ref", ref), ("distorted", distorted)):
        Image.fromarray((arr * 255 + 0.5).astype(np.uint8)).save(files[key])
    return files


@pytest.mark.parametrize("name", metric_names())
def test_metric_plugin(name: str, photo_pair: dict[str, Path]) -> None:
    spec = get_spec(name)
    weights = SHARED_METRIC_WEIGHTS if SHARED_METRIC_WEIGHTS.is_dir() else None
    metric = load_metric(name, weights_dir=weights)
    assert metric.protocol == spec.protocol.name
    if not isinstance(metric, Metric):
        assert not metric and metric.name == name and metric.reason
        pytest.skip(f"{name} unavailable here: {metric.reason}")
    assert isinstance(metric.lower_better, bool) and metric.mode in ("FR", "NR")
    ref, distorted = photo_pair["ref"], photo_pair["distorted"]
    score = metric.score(Pair(distorted, ref))
    assert math.isfinite(score)
    if metric.full_reference:
        perfect = metric.score(Pair(ref, ref))
        assert (perfect < score) if metric.lower_better else (perfect > score), (perfect, score)


@pytest.mark.parametrize("name", card_names())
def test_dataset_card_plugin(name: str, tmp_path: Path) -> None:
    card = load_card(name)
    assert card.name == name and card.file.stem == name and set(card.targets) <= set(TARGETS)
    assert card.targets or card.kind in ("synthetic", "folder")  # those two find their folders when prepared
    st = status(card, root=tmp_path)
    assert st.state in STATES and st.state != "present" and st.action  # nothing prepared under tmp_path yet
    if card.kind == "synthetic":
        prepared = prepare(name, root=tmp_path, generator=TINY_GENERATOR)
    elif card.kind == "folder" and card_folder(card).is_dir():
        prepared = prepare(name, root=tmp_path)
    else:
        assert "bench datasets prepare" in st.action or "http" in st.action, st.action
        return
    found = [t for t in TARGETS if (prepared / t).is_dir()]
    assert set(card.targets) <= set(found) and "test/input" in found
    for target in found:
        assert list_images(prepared / target), f"{name}: {target} is empty"
    pairs = test_pairs(prepared)  # sizes of input and ground truth are checked here
    assert len(pairs) == len(list_images(prepared / "test" / "input"))
    assert all(gt is not None for _, gt in pairs) == ("test/gt" in found)
    assert status(card, root=tmp_path).state in ("present", "stale")  # stale: generator settings differ

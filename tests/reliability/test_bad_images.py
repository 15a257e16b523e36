"""Bad images: each one works or fails alone with a message naming the file; batch commands
(``bench enhance``, evaluation) finish the rest and record the failures; the report lists them."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from rel_helpers import scene, write_image

from backlit_core.image_io import ImageReadError, load_image
from benchmark.cli import cli
from benchmark.enhance import enhance_folder
from benchmark.evaluate import evaluate_system, read_scores
from methods.network import EnhanceNet, apply_illumination
from methods.tiled_inference import TiledEnhancer

BROKEN = {"truncated.jpg": "cannot decode", "zero.png": "empty file (0 bytes)",
          "text.jpg": "not an image file", "one.png": "too small"}
ODD = ["good.png", "four.png", "gray.png", "rgba.png", "rgb16.png", "cmyk.jpg", "black.png"]


def make_inputs(folder: Path) -> Path:
    """Good and odd images that must work, and the broken ones of ``BROKEN``."""
    rng = np.random.default_rng(0)
    write_image(folder / "good.png", scene(1))
    write_image(folder / "four.png", rng.integers(0, 256, (4, 4, 3)))
    Image.fromarray(scene(2)[..., 0].astype(np.uint8), "L").save(folder / "gray.png")
    rgba = np.dstack([scene(3), np.full((48, 64), 128.0)]).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    cv2.imwrite(str(folder / "rgb16.png"), (scene(4) * 257).astype(np.uint16))
    Image.fromarray(scene(5).astype(np.uint8)).convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    write_image(folder / "black.png", np.zeros((48, 64, 3)))
    Image.fromarray(np.tile(scene(6).astype(np.uint8), (4, 4, 1))).save(folder / "full.jpg", quality=95)
    data = (folder / "full.jpg").read_bytes()
    (folder / "full.jpg").unlink()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "zero.png").write_bytes(b"")
    (folder / "text.jpg").write_text("this is not a picture\n")
    write_image(folder / "one.png", rng.integers(0, 256, (1, 1, 3)))
    return folder


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_inputs(tmp_path_factory.mktemp("bad-images"))


@pytest.fixture(scope="module")
def enhanced(inputs: Path, checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    """``bench enhance`` over the whole folder: (click result, output folder)."""
    out = tmp_path_factory.mktemp("enhanced") / "out"
    result = CliRunner().invoke(cli, ["enhance", "-w", str(checkpoint), "-i", str(inputs), "-o", str(out),
                                      "--device", "cpu"])
    return result, out


@pytest.mark.parametrize("name", ["truncated.jpg", "zero.png", "text.jpg"])
def test_unreadable_file_raises_naming_the_file(inputs: Path, name: str) -> None:
    with pytest.raises(ImageReadError) as err:
        load_image(inputs / name)
    assert str(err.value).startswith(f"{inputs / name}: ") and BROKEN[name] in str(err.value)


@pytest.mark.parametrize("name, size", [("gray.png", (48, 64)), ("rgba.png", (48, 64)), ("rgb16.png", (48, 64)),
                                        ("cmyk.jpg", (48, 64)), ("four.png", (4, 4)), ("one.png", (1, 1))])
def test_odd_formats_load_as_rgb_in_unit_range(inputs: Path, name: str, size: tuple[int, int]) -> None:
    img = load_image(inputs / name)
    assert img.dtype == torch.float32 and img.shape == (3, *size)
    assert torch.isfinite(img).all() and 0 <= img.min() and img.max() <= 1


def test_16bit_input_keeps_its_precision(inputs: Path) -> None:
    img = load_image(inputs / "rgb16.png")
    assert len(torch.unique(img)) > 256  # not truncated to 8 bit


@pytest.mark.parametrize("size", [(2, 2), (4, 4), (2, 7)])
def test_tiny_images_are_enhanced(checkpoint: Path, size: tuple[int, int]) -> None:
    net = EnhanceNet()
    net.load_state_dict(torch.load(checkpoint, weights_only=True))
    out = TiledEnhancer(net, device="cpu", tile=64)(torch.rand(3, *size))
    assert out.shape == (3, *size) and torch.isfinite(out).all()


def test_one_pixel_image_is_refused_with_a_reason(checkpoint: Path) -> None:
    net = EnhanceNet()
    net.load_state_dict(torch.load(checkpoint, weights_only=True))
    with pytest.raises(ValueError, match=r"1x1 pixels is too small.*at least 2x2"):
        TiledEnhancer(net, device="cpu")(torch.rand(3, 1, 1))


def test_all_black_input_gives_finite_output() -> None:
    net = EnhanceNet()
    with torch.no_grad():
        net.cond_add1.bias.fill_(-10.0)  # L = ReLU(...) = 0 everywhere: 0 / (0 + eps)
    black = torch.zeros(3, 40, 56)
    for engine in (TiledEnhancer(net, device="cpu"), TiledEnhancer(net, device="cpu", reference=True)):
        out = engine(black)
        assert torch.isfinite(out).all() and out.abs().max() == 0
    assert torch.isfinite(net(black[None])).all()
    assert torch.equal(apply_illumination(torch.zeros(1, 3, 2, 2), torch.zeros(1, 1, 2, 2)), torch.zeros(1, 3, 2, 2))


def test_bench_enhance_finishes_the_rest_and_reports_failures(enhanced: tuple[object, Path], inputs: Path) -> None:
    result, out = enhanced
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["done"]) == sorted(n.rsplit(".", 1)[0] + ".png" for n in ODD)
    failed = {Path(f["file"]).name: f["error"] for f in summary["failed"]}
    assert set(failed) == set(BROKEN)
    for name, cause in BROKEN.items():
        assert failed[name].startswith(str(inputs / name)) and cause in failed[name]
        assert f"failed: {inputs / name}" in result.output  # also said on stderr
    for name in summary["done"]:
        img = load_image(out / name)
        assert torch.isfinite(img).all()
    assert load_image(out / "good.png").mean() > load_image(inputs / "good.png").mean()  # really enhanced
    assert Image.open(out / "four.png").size == (4, 4)


def test_bench_enhance_fail_on_error_exits_nonzero(inputs: Path, checkpoint: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["enhance", "-w", str(checkpoint), "-i", str(inputs / "zero.png"), "-o",
                                   str(tmp_path), "--device", "cpu"])
    assert res.exit_code == 1 and f"{inputs / 'zero.png'}: empty file" in res.output  # nothing done
    summary = enhance_folder(checkpoint, [inputs / "good.png", inputs / "text.jpg"], tmp_path, device="cpu",
                             progress=False)
    assert summary["done"] == ["good.png"] and len(summary["failed"]) == 1


@pytest.fixture(scope="module")
def evaluation(enhanced: tuple[object, Path], inputs: Path, tmp_path_factory: pytest.TempPathFactory):
    """Score the enhanced folder, plus broken outputs, against ground truth of the same stems."""
    _, out = enhanced
    data = tmp_path_factory.mktemp("bad-eval")
    for name in ("good", "four", "gray", "black"):
        write_image(data / "input" / f"{name}.png", np.asarray(Image.open(out / f"{name}.png")))
        write_image(data / "gt" / f"{name}.png", np.asarray(Image.open(out / f"{name}.png")) * 0.8 + 20)
    scored = data / "enh"
    scored.mkdir()
    for name in ("good", "four", "gray", "black"):
        (scored / f"{name}.png").write_bytes((out / f"{name}.png").read_bytes())
    write_image(data / "input" / "cut.png", scene(7))
    write_image(data / "gt" / "cut.png", scene(7))
    (scored / "cut.png").write_bytes((data / "gt" / "cut.png").read_bytes()[:200])  # truncated output
    csv = data / "results" / "scores" / "mine" / "toy.csv"
    result = evaluate_system("mine", "toy", scored, dataset_dir=data, out_csv=csv, metrics=["psnr", "ssim", "piqe"],
                             device="cpu", progress=False)
    return result, csv, scored


def test_evaluation_finishes_the_rest_and_records_failures(evaluation) -> None:
    result, csv, scored = evaluation
    meta = json.loads(csv.with_suffix(".json").read_text())
    assert meta["failed"] == result.failed  # the sidecar records what the run returned
    failed = {(f["image"], f["metric"]): f["error"] for f in meta["failed"]}
    # a truncated output fails every metric, naming the file; the others are scored
    assert {m for (img, m) in failed if img == "cut"} == {"psnr", "ssim", "piqe"}
    assert all(str(scored / "cut.png") in e for (img, _), e in failed.items() if img == "cut")
    # an all-black image makes PIQE NaN: recorded as a failure, never stored as a score
    assert "non-finite score" in failed[("black", "piqe")] and str(scored / "black.png") in failed[("black", "piqe")]
    scores = read_scores(csv)
    assert scores["value"].notna().all() and np.isfinite(scores["value"]).all()
    diagnostics = {"psnr_vs_input", "output_std", "output_clipped"}  # health facts beside the scores
    assert set(scores[scores.image == "good"]["metric"]) == {"psnr", "ssim", "piqe", *diagnostics}
    assert set(scores[scores.image == "black"]["metric"]) == {"psnr", "ssim", *diagnostics}
    assert "cut" not in set(scores["image"]) and meta["complete"] is True


def test_report_lists_failed_images(enhanced: tuple[object, Path], evaluation, inputs: Path) -> None:
    from benchmark.report import build_report

    _, csv, _ = evaluation
    results = csv.parents[2]
    dest = results / "enhanced" / "mine" / "toy"
    dest.mkdir(parents=True)
    (dest / "summary.json").write_text((enhanced[1] / "summary.json").read_text())
    out = build_report(results, {"seed": 0}, n_boot=20, n_images=0, perf_dir=results / "none")
    md = out["md"].read_text()
    skipped = md.split("## Skipped methods, metrics and images")[1]
    for name in BROKEN:
        assert str(inputs / name) in skipped  # enhancement failures
    assert "mine/toy/cut (psnr)" in skipped and "mine/toy/black (piqe)" in skipped and "non-finite" in skipped
    assert "Nothing was skipped" not in skipped


@pytest.mark.slow
def test_12_megapixel_image_is_enhanced_in_tiles(checkpoint: Path, tmp_path: Path) -> None:
    big = tmp_path / "in" / "big.jpg"
    big.parent.mkdir()
    Image.fromarray(scene(8, 3000, 4000).astype(np.uint8)).save(big, quality=90)
    summary = enhance_folder(checkpoint, big.parent, tmp_path / "out", device="cpu", tile=1024, progress=False)
    assert summary["done"] == ["big.png"] and not summary["failed"]
    out = load_image(tmp_path / "out" / "big.png")
    assert out.shape == (3, 3000, 4000) and torch.isfinite(out).all()
    assert out.mean() > load_image(big).mean()

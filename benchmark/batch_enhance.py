"""Enhance a folder (or list) of images with one enhancer (any system: :func:`open_system`); resumable,
failure-tolerant."""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from backlit_core import numerics
from backlit_core.atomic import remove_stale_temporaries, write_json
from backlit_core.image_io import IMAGE_EXTENSIONS, ImageReadError, is_image_file, list_images, load_image, save_png
from benchmark.results import ENHANCED_SUMMARY

if TYPE_CHECKING:
    from methods.enhancer_api import Enhancer


def collect_inputs(inputs: str | Path | Iterable[str | Path]) -> list[Path]:
    """A file, a directory (its images, sorted; none is an error) or an explicit list of files."""
    if isinstance(inputs, (str, Path)):
        p = Path(inputs)
        if p.is_dir():
            found = list_images(p)
            if not found:
                raise FileNotFoundError(f"{p}: no images found (extensions: {', '.join(sorted(IMAGE_EXTENSIONS))})")
            return found
        if p.is_file():
            return [p]
        raise FileNotFoundError(f"{p}: no such file or directory")
    return [Path(i) for i in inputs]


def output_names(paths: list[Path]) -> dict[Path, str]:
    """``<stem>.png`` per input; a later input with the same stem gets ``<stem>-<ext>.png``."""
    names: dict[Path, str] = {}
    taken: set[str] = set()
    for p in paths:
        name = f"{p.stem}.png"
        if name in taken:
            name = f"{p.stem}-{p.suffix.lstrip('.').lower()}.png"
        taken.add(name)
        names[p] = name
    return names


def downscale(img, max_side: int | None):
    """Resize so the longer side is at most ``max_side`` (antialiased bicubic); else unchanged."""
    import torch.nn.functional as F

    h, w = img.shape[-2:]
    if not max_side or max(h, w) <= max_side:
        return img
    scale = max_side / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(img[None], size=size, mode="bicubic", antialias=True, align_corners=False)[0].clamp(0, 1)


def open_system(weights: str | Path, *, padding: str = "reflect", device: str = "auto", tile: int | None = None,
                precision: str = "fp32") -> tuple[Enhancer, dict]:
    """The enhancer of ``weights`` and the facts that identify its outputs (recorded in summary.json).

    ``weights``: a training-free operator (``gamma``, ``hist-eq``, ``clahe``), a released name
    (``bench weights list``), a checkpoint file or a training run directory.
    """
    from backlit_core.hashing import sha256_of
    from backlit_core.registry import UnknownNameError, unknown_name_message
    from benchmark.weights import RELEASED, resolve_weights
    from methods.enhancer_api import open_checkpoint, training_free, training_free_names

    operator = None if Path(str(weights)).exists() else training_free(str(weights))
    if operator is not None:
        return operator, {"weights": str(weights), "weights_sha256": None,
                          "operator": operator.params()}
    try:
        ckpt = resolve_weights(weights)
    except UnknownNameError:
        valid = list(RELEASED) + training_free_names()
        raise UnknownNameError(unknown_name_message("weights or training-free method", str(weights), valid)) from None
    engine = open_checkpoint(ckpt, padding=padding, device=device, tile=tile, precision=precision)
    return engine, {"weights": str(weights), "weights_sha256": sha256_of(ckpt)}


def enhance_folder(
    weights: str | Path,
    inputs: str | Path | Iterable[str | Path],
    out_dir: str | Path,
    *,
    padding: str = "reflect",
    device: str = "auto",
    max_side: int | None = None,
    tile: int | None = None,
    precision: str = "fp32",
    bits: int = 8,
    force: bool = False,
    progress: bool = True,
    timing_file: str | Path | None = None,
) -> dict:
    """Enhance every input into ``out_dir/<stem>.png`` and write ``out_dir/summary.json``.

    Outputs already listed as done by the same weights and settings are kept: ``summary.json`` is
    rewritten after every image, so a killed run resumes where it stopped. An image that cannot be
    read or enhanced is recorded under ``failed`` (the error names the file) and the rest still run.
    ``precision`` is the :class:`~methods.tiled_inference.TiledEnhancer` compute precision (fp32: exact;
    bf16/fp16: faster). The CPU numerics mode (:mod:`backlit_core.numerics`) counts as a setting.
    ``summary.json`` holds no times or absolute paths (it is a DVC output that
    evaluation depends on); seconds per image and wall time go to ``timing_file`` when given and are
    returned under ``timing``.
    """
    out_dir = Path(out_dir)
    paths = [p for p in collect_inputs(inputs) if not p.name.startswith(".")]
    engine, identity = open_system(weights, padding=padding, device=device, tile=tile, precision=precision)
    out_dir.mkdir(parents=True, exist_ok=True)  # only now: a command that fails on its inputs leaves no folder
    settings = {**identity, "padding": padding, "max_side": max_side, "tile": tile, "precision": precision,
                "bits": bits, "numerics": numerics.mode()}
    summary_path = out_dir / ENHANCED_SUMMARY
    finished = set() if force else _finished(summary_path, settings)
    remove_stale_temporaries(out_dir)  # left by a killed run

    names = output_names(paths)
    kept = {names[p] for p in paths if names[p] in finished and (out_dir / names[p]).is_file()}
    done = [names[p] for p in paths if names[p] in kept]
    failed: list[dict[str, str]] = []

    def summary() -> dict:
        return {**settings, "device": engine.device.type, "inputs": len(paths), "done": done, "failed": failed}

    start = time.perf_counter()
    seconds = _enhance_each(engine, [p for p in paths if names[p] not in kept], names, out_dir, (max_side, bits),
                            done, failed, lambda: write_json(summary_path, summary()),
                            progress=(f"enhance {Path(str(weights)).name}", len(paths)) if progress else None)
    result = summary()
    write_json(summary_path, result)
    timing = {"device": str(engine.device), "seconds_per_image": seconds, "wall_s": round(time.perf_counter() - start, 3)}
    if timing_file is not None:
        timing = _merged_timing(Path(timing_file), timing, kept)
        write_json(Path(timing_file), timing)
    return {**result, "timing": timing}


def _merged_timing(path: Path, new: dict, kept: set[str]) -> dict:
    """This call's timing record plus the earlier record of the outputs it kept (a resumed or re-entered
    folder keeps the seconds its images took when they were made); the earlier record when nothing ran."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return new
    if not isinstance(old, dict) or not isinstance(old.get("seconds_per_image"), dict):
        return new
    if not new["seconds_per_image"] and kept:
        return old
    earlier = {k: v for k, v in old["seconds_per_image"].items() if k in kept}
    return {**new, "seconds_per_image": {**earlier, **new["seconds_per_image"]},
            "wall_s": round(new["wall_s"] + float(old.get("wall_s") or 0.0) * bool(earlier), 3)}


def _enhance_each(engine: Enhancer, todo: list[Path], names: dict[Path, str], out_dir: Path,
                  size: tuple[int | None, int], done: list[str], failed: list[dict[str, str]],
                  save_progress: Callable[[], None], progress: tuple[str, int] | None) -> dict[str, float]:
    """Enhance ``todo`` into ``out_dir`` (``size``: max side, bits), appending to ``done``/``failed`` and
    saving progress after each image; returns seconds per output. ``progress``: (label, total) for the bar."""
    from tqdm import tqdm

    label, total = progress or ("", len(todo))
    bar = tqdm(todo, desc=label, unit="img", initial=len(done), total=total, disable=progress is None)
    seconds: dict[str, float] = {}
    for path in bar:
        target = out_dir / names[path]
        t0 = time.perf_counter()
        error = _enhance_one(engine, path, target, *size)
        if error:
            failed.append({"file": str(path), "error": error})
            bar.write(f"failed: {error}")
            continue
        seconds[target.name] = round(time.perf_counter() - t0, 4)
        done.append(target.name)
        save_progress()  # a killed run resumes from here
    return seconds


def _finished(summary_path: Path, settings: dict) -> set[str]:
    """Outputs a previous run with the same weights and settings listed as done."""
    previous = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    return set(previous.get("done", [])) if all(previous.get(k) == v for k, v in settings.items()) else set()


def _enhance_one(engine: Enhancer, path: Path, target: Path, max_side: int | None, bits: int) -> str | None:
    """Enhance ``path`` into ``target``; the error (naming the file) when it cannot be read or enhanced."""
    try:
        if not is_image_file(path) and path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
            raise ImageReadError(path, "not an image file extension")
        save_png(engine(downscale(load_image(path), max_side)), target, bits=bits)
    except (ImageReadError, RuntimeError, ValueError, OSError) as exc:
        return str(exc) if str(path) in str(exc) else f"{path}: {exc}"
    return None

"""Score one system's enhanced folder against a dataset's test split -> a long table.

Writes a scores CSV (columns :data:`~benchmark.results.SCORE_COLUMNS`; where it goes:
:class:`~benchmark.results.ResultsFolder`) and its sidecar with each metric's status (direction, protocol,
or the reason it is unavailable), the number of images given (``images``), per-image failures and file
fingerprints, so a rerun scores only what changed. Both are also saved every :data:`CHECKPOINT_S` seconds
during a run (sidecar ``complete: false``), so a killed run resumes without rescoring what it finished.
"""
from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from backlit_core import numerics
from backlit_core.atomic import read_json, remove_stale_temporaries, write_json
from backlit_core.image_io import list_images
from benchmark.metrics import (
    DEFAULT_METRICS,
    DIAGNOSTIC_PROTOCOL,
    DIAGNOSTICS,
    Metric,
    MetricInputError,
    Pair,
    Unavailable,
    diagnostics,
    get_spec,
    load_metrics,
)
from benchmark.results import (
    ENHANCED_SUMMARY,
    SCORE_COLUMNS,
    read_enhanced_summary,
    read_scores,
    scores_sidecar,
    write_scores,
)
from benchmark.system import System

ALL_METRICS = "all"  # the ``metric`` of a failure that drops the whole image (no enhanced output)
CHECKPOINT_S = 2.0  # a running evaluation saves its progress at most this often


@dataclass(frozen=True)
class TestSet:
    """A dataset's test split: input images and, when paired, ground truth with the same stems."""

    name: str
    inputs: Path
    gt: Path | None


def resolve_test_set(dataset: str | Path) -> TestSet:
    """A dataset name (``datasets/data/<name>``; a ``kind: folder`` card not yet prepared is read from its
    folder) or a directory in any layout of :mod:`benchmark.data.folder`.

    Errors name the folder: an unknown name lists the dataset cards with a suggestion; a test input
    folder without images is refused.
    """
    from benchmark.data.errors import DatasetError
    from benchmark.data.folder import test_folders

    path = Path(dataset)
    name = path.name
    if not path.is_dir():
        path = _named_dataset(str(dataset))
        name = str(dataset)
    try:
        inputs, gt = test_folders(path)
    except DatasetError as exc:
        raise FileNotFoundError(str(exc)) from None
    if not list_images(inputs):
        raise FileNotFoundError(f"{inputs}: no test images found (empty folder)")
    return TestSet(name, inputs, gt)


def _named_dataset(name: str) -> Path:
    """The folder of dataset ``name``: its prepared copy, else a folder card's own folder."""
    from backlit_core.registry import unknown_name_message
    from benchmark.data import dataset_dir, load_card
    from benchmark.data.cards import card_names
    from benchmark.data.prepare import card_folder

    root = Path(dataset_dir(name))
    if root.is_dir():
        return root
    if name not in card_names():
        raise FileNotFoundError(f"{unknown_name_message('dataset', name, card_names())} (or pass a directory)")
    card = load_card(name)
    if card.kind == "folder" and card_folder(card).is_dir():
        return card_folder(card)
    raise FileNotFoundError(f"dataset {name!r}: {root} has no test/input folder (prepare it with "
                            f"`bench datasets prepare {name}`, or pass a directory)")


def match_pairs(enhanced: Path, gt: Path | None, stems: Iterable[str]) -> list[tuple[str, Path | None, Path | None]]:
    """``(stem, enhanced file or None, ground truth or None)`` of each of ``stems``, by exact file stem."""
    files = {p.stem: p for p in list_images(enhanced)}
    gts = {p.stem: p for p in list_images(gt)} if gt is not None else {}
    return [(s, files.get(s), gts.get(s)) for s in stems]


def given_stems(test: TestSet, stems: Iterable[str] | None = None, limit: int | None = None) -> list[str]:
    """The images a system is scored on: ``stems``, else every test input's stem (sorted), the first ``limit``."""
    wanted = list(dict.fromkeys(stems if stems is not None else (p.stem for p in list_images(test.inputs))))
    return wanted[:limit] if limit else wanted


def pair_problems(test: TestSet, stems: Iterable[str]) -> dict[str, str]:
    """Image stem -> why its pair loses the full-reference metrics: no ground truth with its stem, or ground
    truth of another size (both files and sizes named). Sizes come from the file headers."""
    from benchmark.data.errors import DatasetError
    from benchmark.data.pairs import size_mismatch

    if test.gt is None:
        return {}
    out: dict[str, str] = {}
    for stem, inp, gt in match_pairs(test.inputs, test.gt, stems):
        if inp is None:
            continue
        if gt is None:
            out[stem] = f"{inp}: no ground truth named {stem}.* in {test.gt}"
            continue
        try:
            problem = size_mismatch(inp, gt)
        except DatasetError as exc:
            problem = str(exc)
        if problem:
            out[stem] = problem
    return out


def _fingerprint(*paths: Path | None) -> str:
    """Content hashes (not times: the sidecar is a DVC output and must be the same on every machine)."""
    from backlit_core.hashing import sha256_of

    return "|".join(sha256_of(p)[:16] if p else "-" for p in paths)


@dataclass
class Evaluation:
    """What one scoring run produced: the long table plus metric status, per-image failures and the number of
    images given (each metric's scored images are its rows; the others are under ``failed``)."""

    scores: pd.DataFrame
    metrics: dict[str, dict] = field(default_factory=dict)
    failed: list[dict[str, str]] = field(default_factory=list)
    skipped: str | None = None
    given: int = 0

    def scored(self, metric: str) -> int:
        return int((self.scores["metric"] == metric).sum())


def _metric_status(metrics: list[Metric], unavailable: list[Unavailable], has_gt: bool) -> dict[str, dict]:
    status: dict[str, dict] = {}
    for m in metrics:
        status[m.name] = {"status": "ok", "lower_better": m.lower_better, "mode": m.mode,
                          "score_range": m.score_range, "protocol": m.protocol,
                          "protocol_details": m.spec.protocol.as_dict()}
        if m.full_reference and not has_gt:
            status[m.name].update(status="skipped", reason="full-reference metric; the dataset has no ground truth")
    for u in unavailable:
        status[u.name] = {"status": "unavailable", "reason": u.reason, "protocol": u.protocol,
                          "protocol_details": get_spec(u.name).protocol.as_dict()}
    return status


def _previous(out_csv: Path | None) -> tuple[pd.DataFrame, dict]:
    """The stored scores and sidecar of ``out_csv`` (empty when absent or unreadable)."""
    empty = pd.DataFrame(columns=SCORE_COLUMNS)
    if out_csv is None or not out_csv.is_file():
        return empty, {}
    try:
        return read_scores(out_csv), read_json(scores_sidecar(out_csv))
    except (ValueError, OSError):
        return empty, {}


def evaluate_system(system: str | System, dataset: str, enhanced_dir: str | Path, *,
                    dataset_dir: str | Path | None = None, out_csv: str | Path | None = None,
                    metrics: Iterable[str] = DEFAULT_METRICS, device: str = "cpu",
                    metric_weights: str | Path | None = None, stems: Iterable[str] | None = None,
                    limit: int | None = None, force: bool = False, progress: bool = True,
                    seed: int | None = None) -> Evaluation:
    """Score ``enhanced_dir`` (``<stem>.png`` per test input) with ``metrics``; write ``out_csv`` + sidecar.

    Scores whose enhanced and ground-truth files are unchanged since the last (or a killed) run, under
    the same CPU numerics mode (:mod:`backlit_core.numerics`), are reused. A score that fails or is
    not finite is recorded under ``failed`` with the file's name.
    A skipped system (its ``summary.json`` says ``skipped``) yields no rows and the reason.
    ``seed`` is the training seed of a trained run given by name (the ``seed`` column; empty otherwise).
    """
    from tqdm import tqdm

    system = system if isinstance(system, System) else System.parse(system, seed)
    enhanced_dir = Path(enhanced_dir)
    out_csv = Path(out_csv) if out_csv is not None else None
    test = resolve_test_set(dataset_dir if dataset_dir is not None else dataset)
    if out_csv is not None and out_csv.parent.is_dir():
        remove_stale_temporaries(out_csv.parent, out_csv.stem)  # left by a killed run
    summary = read_enhanced_summary(enhanced_dir)
    if summary.get("skipped") or not enhanced_dir.is_dir():
        reason = summary.get("skipped") or f"{enhanced_dir}: no enhanced images"
        result = Evaluation(pd.DataFrame(columns=SCORE_COLUMNS), skipped=str(reason))
        _write(result, out_csv, system, dataset, {})
        return result

    loaded, unavailable = load_metrics(list(dict.fromkeys(metrics)), device=device, weights_dir=metric_weights)
    status = _metric_status(loaded, unavailable, test.gt is not None)
    runnable = [m for m in loaded if status[m.name]["status"] == "ok"]
    old, old_meta = _previous(None if force else out_csv)
    same_numerics = old_meta.get("numerics", "native") == numerics.mode()  # other kernels: score afresh
    old_prints = old_meta.get("fingerprints", {}) if same_numerics else {}
    old_index = {(r.image, r.metric): r.value for r in old.itertuples()} if len(old) else {}
    sources = {} if system.source == "input" else {p.stem: p for p in list_images(test.inputs)}  # psnr_vs_input
    base = {"dataset": dataset, "system": system.name, **system.info(),
            "seed": "" if system.seed is None else str(system.seed)}
    rows: list[dict] = []
    failed: list[dict[str, str]] = []
    prints: dict[str, str] = {}
    saved = time.perf_counter()
    pairs = match_pairs(enhanced_dir, test.gt, given_stems(test, stems, limit))
    given = len(pairs)
    failed += [{"image": stem, "metric": ALL_METRICS, "error": f"{enhanced_dir / stem}.png: no enhanced output "
                f"(its enhancement failed; see {ENHANCED_SUMMARY} there)"} for stem, path, _ in pairs if path is None]
    pairs = [(stem, path, gt) for stem, path, gt in pairs if path is not None]
    for stem, path, gt in tqdm(pairs, desc=f"score {system.name}/{dataset}", unit="img", disable=not progress):
        prints[stem] = _fingerprint(path, gt)
        old_scores = old_index if old_prints.get(stem) == prints[stem] else {}
        rows += _image_rows({**base, "image": stem}, Pair(path, gt), sources.get(stem), runnable, old_scores, failed)
        if out_csv is not None and time.perf_counter() - saved >= CHECKPOINT_S:
            _write(Evaluation(pd.DataFrame(rows, columns=SCORE_COLUMNS), status, failed), out_csv, system, dataset,
                   prints, test=test, enhanced_dir=enhanced_dir, complete=False)
            saved = time.perf_counter()
    result = Evaluation(pd.DataFrame(rows, columns=SCORE_COLUMNS), status, failed, given=given)
    _write(result, out_csv, system, dataset, prints, test=test, enhanced_dir=enhanced_dir)
    return result


def _image_rows(base: dict, pair: Pair, source: Path | None, metrics: list[Metric], old: dict,
                failed: list[dict[str, str]]) -> list[dict]:
    """Score rows of one image: each metric, then the diagnostics (against its input ``source``)."""
    stem = base["image"]
    scored = _score_image(stem, pair, metrics, old, failed)
    rows = [{**base, "metric": m.name, "protocol": m.protocol, "value": v, "lower_better": m.lower_better}
            for m, v in scored]
    diag = _diagnostics(pair, source, old, stem) if scored else {}
    return rows + [{**base, "metric": name, "protocol": DIAGNOSTIC_PROTOCOL, "value": value,
                    "lower_better": DIAGNOSTICS[name]} for name, value in diag.items()]


def _score_image(stem: str, pair: Pair, metrics: list[Metric], old: dict,
                 failed: list[dict[str, str]]) -> list[tuple[Metric, float]]:
    """``(metric, value)`` of one image (stored values from ``old`` when unchanged); failures go to ``failed``."""
    path, out = pair.image_path, []
    for m in metrics:
        if m.full_reference and pair.ref_path is None:
            failed.append({"image": stem, "metric": m.name, "error": f"{path}: no ground truth with this stem"})
            continue
        if (stem, m.name) in old:
            value = float(old[(stem, m.name)])
        else:
            try:
                value = m.score(pair)
            except MetricInputError as exc:
                failed.append({"image": stem, "metric": m.name, "error": str(exc)})
                continue
            except Exception as exc:  # noqa: BLE001 - recorded for this image; the run goes on
                failed.append({"image": stem, "metric": m.name, "error": f"{path}: {type(exc).__name__}: {exc}"})
                continue
        if not math.isfinite(value):
            failed.append({"image": stem, "metric": m.name, "error": f"{path}: non-finite score ({value})"})
            continue
        out.append((m, value))
    return out


def _diagnostics(pair: Pair, source: Path | None, old: dict, stem: str) -> dict[str, float]:
    """The health diagnostics of one output (stored ones when unchanged); none for an unreadable file
    (its metrics record the failure)."""
    stored = {name: float(old[(stem, name)]) for name in DIAGNOSTICS if (stem, name) in old}
    if stored:
        return stored
    from backlit_core.image_io import load_image

    try:
        return diagnostics(pair.image, load_image(source)[None] if source is not None else None)
    except Exception:  # noqa: BLE001 - the metrics have recorded why this file cannot be read
        return {}


def _write(result: Evaluation, out_csv: Path | None, system: System, dataset: str, prints: dict[str, str],
           test: TestSet | None = None, enhanced_dir: Path | None = None, complete: bool = True) -> None:
    """The scores CSV, then its sidecar (fingerprints only of images whose rows are in the CSV)."""
    if out_csv is None:
        return
    write_scores(result.scores, out_csv)
    write_json(scores_sidecar(out_csv), {
        "system": system.name, "dataset": dataset, **system.info(), "seed": system.seed,
        "enhanced_dir": str(enhanced_dir) if enhanced_dir else None,
        "inputs_dir": str(test.inputs) if test else None, "gt_dir": str(test.gt) if test and test.gt else None,
        "images": result.given if complete else len(prints), "metrics": result.metrics, "failed": result.failed,
        "skipped": result.skipped,
        "fingerprints": prints, "numerics": numerics.mode(), "complete": complete,
    })

"""``prepare``: turn a card or a user folder into ``<data root>/<name>/`` in the standard layout.

Idempotent: a ``prepared.json`` stamp whose key matches (card digest, generator parameters, or the
folder listing) makes a second call return at once. Upstream files live in
``<data root>/raw/<group>/``: fetched automatically where a source allows it, else placed by the user.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from backlit_core.atomic import write_json
from backlit_core.image_io import list_images
from backlit_core.paths import REFERENCE_DIR, REFERENCE_ENV
from benchmark.data import layout
from benchmark.data.cards import Card, card_names, load_card
from benchmark.data.download import extract_all, fetch_gdrive, fetch_gdrive_folder, fetch_http, pending_archives
from benchmark.data.errors import DatasetError, SourceUnavailable
from benchmark.data.folder import detect, slug
from benchmark.data.manifest import read_manifest, verify_manifest
from benchmark.data.mirror import MIRROR_ENV, fetch_group, group_url, mirror_record, mirror_url
from benchmark.data.paths import PROJECT_ROOT, data_root, dataset_dir, raw_dir

log = logging.getLogger("benchmark.data")


def is_path_like(name_or_path: str) -> bool:
    """True for anything written as a path (a separator, ``.``, ``~``) rather than a card name."""
    return any(c in name_or_path for c in ("/", os.sep)) or name_or_path.startswith((".", "~"))


def prepare(name_or_path: str, root: Path | None = None, seed: int | None = None,
            generator: dict[str, int] | None = None) -> Path:
    """Prepare a card (by name) or a user folder (by path); return its standard-layout directory.

    ``seed`` and ``generator`` override the card's generator parameters of ``synthetic-backlit``
    (ignored for other datasets). Unknown names raise :class:`backlit_core.registry.UnknownNameError`;
    everything else that goes wrong raises :class:`DatasetError` (or a subclass) saying what to do.
    """
    root = Path(root) if root else data_root()
    if is_path_like(name_or_path) or (name_or_path not in card_names() and Path(name_or_path).is_dir()):
        return prepare_folder(Path(name_or_path), root)
    card = load_card(name_or_path)
    if card.kind == "synthetic":
        from benchmark.data.synthetic import GeneratorParams

        overrides = {**(generator or {}), **({} if seed is None else {"seed": seed})}
        return synthesize(dataset_dir(card.name, root), GeneratorParams(**{**card.generator, **overrides}))
    if card.kind == "folder":
        return prepare_folder(card_folder(card), root, name=card.name)
    return prepare_card(card, root)


def _fresh(dest: Path, key: str) -> bool:
    stamp = layout.read_stamp(dest)
    return stamp is not None and stamp.get("key") == key


def synthetic_key(params: Any) -> str:
    from benchmark.data.synthetic import VERSION

    return f"synthetic-v{VERSION}:{sorted(asdict(params).items())}"


def synthesize(dest: Path, params: Any) -> Path:
    """Generate ``synthetic-backlit`` with ``params`` (a ``GeneratorParams``) into ``dest``."""
    from benchmark.data.synthetic import generate

    key = synthetic_key(params)
    if _fresh(dest, key):
        return dest
    tmp = dest.with_name(f".{dest.name}.building")
    shutil.rmtree(tmp, ignore_errors=True)
    summary = generate(tmp, params)
    write_json(tmp / layout.STAMP, {"key": key, "dataset": "synthetic-backlit", **summary})
    layout.replace_dir(tmp, dest)
    log.info("synthetic-backlit: %s -> %s", summary["counts"], dest)
    return dest


def card_folder(card: Card) -> Path:
    """The folder of a ``kind: folder`` card (``$BACKLIT_BENCH_REFERENCE`` is the reference data, set or not;
    relative paths are relative to the project root)."""
    text = (card.path or "").replace("${" + REFERENCE_ENV + "}", "$" + REFERENCE_ENV)
    text = text.replace("$" + REFERENCE_ENV, str(REFERENCE_DIR))
    path = Path(os.path.expandvars(text)).expanduser()
    return (path if path.is_absolute() else PROJECT_ROOT / path).resolve()


def _is_card_folder(name: str, folder: Path) -> bool:
    card = load_card(name)
    return card.kind == "folder" and card_folder(card) == folder.resolve()


def _listing_key(folders: dict[str, Path]) -> str:
    h = hashlib.sha256()
    for target, folder in sorted(folders.items()):
        h.update(f"{target}={folder.resolve()}\n".encode())
        for p in list_images(folder):
            st = p.stat()
            h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return "folder:" + h.hexdigest()[:16]


def prepare_folder(folder: Path, root: Path, name: str | None = None) -> Path:
    """Materialise a user folder (see :mod:`benchmark.data.folder`) as ``<root>/<name or slug>``."""
    folder = folder.expanduser()
    if not folder.is_dir():
        raise DatasetError(f"{folder}: folder not found")
    dest = dataset_dir(name or slug(folder), root)
    if folder.resolve() == dest.resolve():  # already a prepared dataset in place
        return dest
    if name is None:
        name = dest.name
        if name in card_names() and not _is_card_folder(name, folder):
            raise DatasetError(f"{folder}: its name {name!r} is a dataset card; rename the folder or write a "
                               f"card with kind: folder")
    folders = detect(folder)
    key = _listing_key(folders)
    if not _fresh(dest, key):
        report = layout.materialise(folders, dest, extra={"key": key, "dataset": name})
        _log_report(name, report)
    return dest


def _find(card: Card, root: Path) -> tuple[dict[str, Path], list[str]]:
    """Resolve the card's layout rules in the raw folders: (found folders, missing-rule descriptions)."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    for rule in card.layout:
        raw = raw_dir(rule.group, root)
        hits: list[Path] = []
        for pattern in rule.paths:
            hits = [d for d in layout.find_dirs(raw, pattern) if list_images(d)] if raw.is_dir() else []
            if hits:
                break
        if len(hits) > 1:
            raise DatasetError(f"{card.name}: {rule.target} is ambiguous, several folders in {raw} match "
                               f"{' or '.join(rule.paths)}: {', '.join(str(h.relative_to(raw)) for h in hits)}; "
                               f"remove the extra copies")
        if hits:
            found[rule.target] = hits[0]
        elif rule.required:
            missing.append(f"{rule.group}: {' or '.join(rule.paths)} -> {rule.target}")
    return found, missing


def _missing_groups(card: Card, root: Path) -> list[str]:
    _, missing = _find(card, root)
    return list(dict.fromkeys(m.split(":", 1)[0] for m in missing))


def _fetch(source: Any, raw: Path) -> None:
    if source.type == "http":
        fetch_http(source.url, raw / source.filename, source.sha256, source.size)
    elif source.type == "gdrive":
        fetch_gdrive(source.gdrive_id, raw / source.filename, source.sha256, source.size)
    else:
        fetch_gdrive_folder(source.gdrive_id, raw)


def _fetch_from_mirror(card: Card, group: str, raw: Path, base: str) -> None:
    known = {s.filename: s.sha256 for s in card.sources_for(group) if s.filename and s.sha256}
    fetch_group(base, group, raw, known)


def prepare_card(card: Card, root: Path) -> Path:
    """Fetch (where possible: the card's automatic sources, or every group from the mirror of
    :mod:`benchmark.data.mirror` when one is set), extract, lay out and verify a download or manual card."""
    dest = dataset_dir(card.name, root)
    key = f"card:{card.digest}"
    if _fresh(dest, key):
        return dest
    for group in card.groups:
        raw = raw_dir(group, root)
        if raw.is_dir():
            extract_all(raw)
    failures = _fetch_missing(card, root)
    still = _missing_groups(card, root)
    if still:
        raise SourceUnavailable("\n\n".join(how_to_get(card, g, root, failures.get(g, [])) for g in still))
    _lay_out(card, root, dest, key)
    return dest


def _fetch_missing(card: Card, root: Path) -> dict[str, list[str]]:
    """Fetch each missing raw group (from the mirror if one is set, else the automatic sources until it is
    complete); the failures per group."""
    failures: dict[str, list[str]] = {}
    mirror = mirror_url()
    for group in _missing_groups(card, root):
        raw = raw_dir(group, root)
        if mirror:
            try:
                _fetch_from_mirror(card, group, raw, mirror)
            except SourceUnavailable as exc:
                failures.setdefault(group, []).append(f"mirror: {exc}")
            continue
        for source in (s for s in card.sources_for(group) if s.automatic):
            try:
                _fetch(source, raw)
                extract_all(raw)
            except SourceUnavailable as exc:
                failures.setdefault(group, []).append(f"{source.id}: {exc}")
                continue
            if group not in _missing_groups(card, root):
                break
    return failures


def _lay_out(card: Card, root: Path, dest: Path, key: str) -> None:
    """Materialise the card's raw files into ``dest``, check the counts and verify the manifest."""
    found, _ = _find(card, root)
    extra = {"key": key, "dataset": card.name}
    mirrored = {g: rec for g in card.groups if (rec := mirror_record(raw_dir(g, root)))}
    if mirrored:
        extra["mirror"] = mirrored
    report = layout.materialise(found, dest, extra=extra)
    _check_counts(card, report)
    _log_report(card.name, report)
    if card.manifest is not None and card.manifest.is_file():
        result = verify_manifest(dest, read_manifest(card.manifest))
        if not result.ok:
            write_json(dest / layout.STAMP, {**report, "key": None, "manifest_failed": result.summary()})
            raise DatasetError(f"{card.name}: files differ from the manifest {card.manifest}: {result.summary()}")


def _check_counts(card: Card, report: dict[str, Any]) -> None:
    for target, n in card.expect.items():
        got = report["counts"].get(target, 0)
        if got != n:
            log.warning("%s: %s has %d images, the card expects %d", card.name, target, got, n)


def _log_report(name: str, report: dict[str, Any]) -> None:
    for split, problems in report.get("problems", {}).items():
        for kind, items in problems.items():
            if items:
                log.warning("%s: %s %s (%d): %s", name, split, kind.replace("_", " "), len(items), ", ".join(items[:20]))


def how_to_get(card: Card, group: str, root: Path | None = None, failures: list[str] | None = None) -> str:
    """Instructions naming the sources, the files and where to put them for raw folder ``group``."""
    raw = raw_dir(group, root)
    lines = [f"{card.name}: the upstream files for '{group}' are not in {raw}/."]
    if failures:
        lines += ["Automatic download failed:"] + [f"  - {f}" for f in failures]
    mirror = mirror_url()
    if mirror:
        lines.append(f"{MIRROR_ENV} is set: the files and their list ({group_url(mirror, group)}SHA256SUMS) are "
                     f"expected there. Else unset it and get them from any one of:")
    else:
        lines.append("Get them from any one of:")
    for s in card.sources_for(group):
        extra = [f"extraction code {s.code}" if s.code else "", f"file {s.filename}" if s.filename else "",
                 f"sha256 {s.sha256}" if s.sha256 else ""]
        lines.append(f"  - {s.what or s.id} [{s.type}]: {s.link}" + "".join(f"; {e}" for e in extra if e))
        if s.note:
            lines.append(f"    {s.note}")
    lines.append(f"Put the files (archives are extracted automatically) in {raw}/ so that these folders exist:")
    lines += [f"  {' or '.join(r.paths)}  -> {r.target}{'' if r.required else ' (optional)'}"
              for r in card.layout if r.group == group]
    found = layout.subdirs(raw)
    if found:
        lines.append(f"Folders found there now: {', '.join(found)}")
    lines.append(f"then run: bench datasets prepare {card.name}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Status:
    state: str  # present | stale | ready (found, prepared on first use) | missing | manual
    action: str  # what to do (empty when present)


def status(card: Card, root: Path | None = None) -> Status:
    """Whether a card's data is prepared and, if not, exactly what to do."""
    root = Path(root) if root else data_root()
    dest = dataset_dir(card.name, root)
    stamp = layout.read_stamp(dest)
    run = f"bench datasets prepare {card.name}"
    if card.kind == "synthetic":
        from benchmark.data.synthetic import GeneratorParams

        if stamp is None:
            return Status("missing", f"{run}  (generated offline in seconds)")
        fresh = stamp.get("key") == synthetic_key(GeneratorParams(**card.generator))
        return Status("present", "") if fresh else Status("stale", f"{run}  (generator settings changed)")
    if card.kind == "folder":
        folder = card_folder(card)
        if not folder.is_dir():
            return Status("missing", f"folder {folder} not found (set {REFERENCE_ENV} to the reference data, or edit "
                                     f"'path' in {card.file})")
        return Status("present", "") if stamp else \
            Status("ready", f"found at {folder} (commands read it from there)\n{run}  (links it into {dest.parent})")
    if stamp and stamp.get("manifest_failed"):
        return Status("stale", f"{run}  (last copy failed the manifest check: {stamp['manifest_failed']})")
    if stamp:
        return Status("present", "") if stamp.get("key") == f"card:{card.digest}" else Status("stale", f"{run}  (card changed)")
    groups = [g for g in _missing_groups(card, root) if not (raw_dir(g, root).is_dir() and pending_archives(raw_dir(g, root)))]
    if not groups:
        return Status("ready", f"{run}  (upstream files or archives found in {raw_dir('', root)})")
    mirror = mirror_url()
    if mirror:
        return Status("missing", f"{run}  (downloads {', '.join(group_url(mirror, g) for g in groups)}: {MIRROR_ENV})")
    if all(any(s.automatic for s in card.sources_for(g)) for g in groups):
        links = ", ".join(s.link for g in groups for s in card.sources_for(g) if s.automatic)
        return Status("missing", f"{run}  (downloads {links})")
    manual = [g for g in groups if not any(s.automatic for s in card.sources_for(g))]
    return Status("manual", how_to_get(card, manual[0], root))

"""sha256 manifests of a dataset (``sha256sum``-compatible text: ``<hex>  <path>``).

Paths are standard-layout paths (``test/input/<file>``), also for a user folder in another layout of
:mod:`benchmark.data.folder`, so one manifest checks a folder and the dataset prepared from it alike.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from backlit_core.atomic import write_text
from backlit_core.hashing import sha256_of
from benchmark.data.cards import TARGETS
from benchmark.data.errors import DatasetError

Folders = Path | Mapping[str, Path]  # a standard-layout folder, or {standard target: folder}


def _targets(dataset: Folders) -> dict[str, Path]:
    return dict(dataset) if isinstance(dataset, Mapping) else {t: Path(dataset) / t for t in TARGETS}


def _files(dataset: Folders) -> dict[str, Path]:
    """Standard-layout relative path -> file, for every file in the layout's folders."""
    return {f"{target}/{p.name}": p for target, folder in _targets(dataset).items() if folder.is_dir()
            for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")}


def layout_files(dataset: Folders) -> list[str]:
    """Every file under the standard-layout folders of ``dataset``, as sorted posix relative paths."""
    return sorted(_files(dataset))


def build_manifest(dataset: Folders) -> dict[str, str]:
    """relative path -> sha256 for every standard-layout file of ``dataset``."""
    return {rel: sha256_of(path) for rel, path in sorted(_files(dataset).items())}


def write_manifest(file: str | Path, entries: dict[str, str], title: str = "") -> Path:
    """Write ``entries`` sorted by path, with an optional ``# title`` header line."""
    head = f"# {title}\n" if title else ""
    write_text(file, head + "".join(f"{sha}  {rel}\n" for rel, sha in sorted(entries.items())))
    return Path(file)


def read_manifest(file: str | Path) -> dict[str, str]:
    """Parse a manifest; blank and ``#`` lines are ignored; bad lines raise naming file and line."""
    file = Path(file)
    if not file.is_file():
        raise DatasetError(f"{file}: manifest not found")
    return parse_manifest(file.read_text(), str(file))


def parse_manifest(text: str, origin: str) -> dict[str, str]:
    """relative path -> sha256 of manifest ``text``; a bad line raises naming ``origin`` and the line."""
    entries: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        sha, sep, rel = line.partition("  ")
        rel = rel.lstrip("*")
        if not sep or len(sha) != 64 or not rel:
            raise DatasetError(f"{origin}:{n}: expected '<sha256>  <relative path>', got {line!r}")
        entries[rel] = sha.lower()
    return entries


@dataclass
class Verification:
    """Result of checking a dataset folder against a manifest."""

    checked: int = 0
    missing: list[str] = field(default_factory=list)
    corrupted: list[str] = field(default_factory=list)  # present, wrong sha256
    extra: list[str] = field(default_factory=list)  # present, not in the manifest

    @property
    def ok(self) -> bool:
        return not (self.missing or self.corrupted or self.extra)

    def summary(self) -> str:
        if self.ok:
            return f"all {self.checked} files match the manifest"
        parts = [f"{label} {len(items)}: {', '.join(items[:10])}{' ...' if len(items) > 10 else ''}"
                 for label, items in (("corrupted (sha256 differs)", self.corrupted), ("missing", self.missing),
                                      ("not in manifest", self.extra)) if items]
        return "; ".join(parts)


def verify_manifest(dataset: Folders, entries: dict[str, str]) -> Verification:
    """Compare the standard-layout files of ``dataset`` with ``entries``."""
    present = _files(dataset)
    result = Verification(extra=sorted(set(present) - set(entries)))
    for rel, sha in sorted(entries.items()):
        if rel not in present:
            result.missing.append(rel)
            continue
        result.checked += 1
        if sha256_of(present[rel]) != sha:
            result.corrupted.append(rel)
    return result

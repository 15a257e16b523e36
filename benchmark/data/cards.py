"""Dataset cards (``datasets/<name>.yaml``): schema, loading and validation.

A card says what a dataset is (citation, licence), where its files come from (``sources``; sources
with the same ``into`` are alternatives that fill the same raw folder ``<data root>/raw/<into>/``),
and how upstream folders map onto the standard layout (``layout``: target -> glob patterns tried
in order, relative to a raw folder). Errors read ``<card file>: <field>: <problem>``.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from backlit_core.registry import UnknownNameError, unknown_name_message
from benchmark.data.errors import CardError
from benchmark.data.paths import CARDS_DIR, RAW

TARGETS = ("train/backlit", "train/welllit-paired", "train/welllit-unpaired", "test/input", "test/gt")
PAIRS = (("train/backlit", "train/welllit-paired"), ("test/input", "test/gt"))  # input target, its ground truth
KINDS = ("download", "manual", "synthetic", "folder")
SOURCE_TYPES = ("http", "gdrive", "gdrive-folder", "baidu", "manual")
AUTOMATIC = ("http", "gdrive", "gdrive-folder")
_REQUIRED_BY_TYPE = {
    "http": ("url", "filename"),
    "gdrive": ("gdrive_id", "filename"),
    "gdrive-folder": ("gdrive_id",),
    "baidu": ("url", "code"),
    "manual": ("url",),
}
_NAME_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Source:
    """One place to get files from; ``into`` names the raw folder it fills."""

    id: str
    type: str
    into: str
    what: str = ""
    url: str | None = None
    gdrive_id: str | None = None
    code: str | None = None
    filename: str | None = None
    sha256: str | None = None
    size: int | None = None
    note: str = ""

    @property
    def automatic(self) -> bool:
        return self.type in AUTOMATIC

    @property
    def link(self) -> str:
        """A URL a person can open."""
        if self.type == "gdrive":
            return f"https://drive.google.com/file/d/{self.gdrive_id}/view"
        if self.type == "gdrive-folder":
            return f"https://drive.google.com/drive/folders/{self.gdrive_id}"
        return self.url or ""


@dataclass(frozen=True)
class LayoutRule:
    """Fill standard-layout ``target`` from the first pattern that matches a folder in raw ``group``."""

    target: str
    group: str
    paths: tuple[str, ...]
    required: bool = True


@dataclass(frozen=True)
class Card:
    name: str
    title: str
    kind: str
    description: str
    citation: str
    licence: str
    prepare: str
    file: Path
    digest: str
    homepage: str = ""
    notes: str = ""
    sources: tuple[Source, ...] = ()
    layout: tuple[LayoutRule, ...] = ()
    expect: dict[str, int] = field(default_factory=dict)
    manifest: Path | None = None
    path: str | None = None  # kind folder: the user folder (relative to the project root, ~ and $VARS allowed)
    generator: dict[str, Any] = field(default_factory=dict)  # kind synthetic: generator parameters

    @property
    def targets(self) -> tuple[str, ...]:
        """Standard-layout folders this dataset provides."""
        return tuple(r.target for r in self.layout)

    @property
    def groups(self) -> tuple[str, ...]:
        """Raw folders the layout reads, in first-use order."""
        return tuple(dict.fromkeys(r.group for r in self.layout))

    def sources_for(self, group: str) -> list[Source]:
        return [s for s in self.sources if s.into == group]


_CARD_KEYS = {f.name for f in fields(Card)} - {"file", "digest"}
_SOURCE_KEYS = {f.name for f in fields(Source)}


def _fail(file: Path, key: str, msg: str) -> CardError:
    return CardError(f"{file}: {key}: {msg}")


def _str(d: dict, key: str, file: Path, where: str, required: bool = True) -> str | None:
    value = d.get(key)
    if value is None:
        if required:
            raise _fail(file, f"{where}{key}", "missing (required)")
        return None
    if not isinstance(value, str) or not value.strip():
        raise _fail(file, f"{where}{key}", f"must be a non-empty string, got {value!r}")
    return value.strip()


def _parse_source(raw: Any, i: int, card_name: str, file: Path) -> Source:
    where = f"sources[{i}]."
    if not isinstance(raw, dict):
        raise _fail(file, f"sources[{i}]", "must be a mapping")
    unknown = set(raw) - _SOURCE_KEYS
    if unknown:
        raise _fail(file, where + min(unknown), f"unknown field (valid: {', '.join(sorted(_SOURCE_KEYS))})")
    sid = _str(raw, "id", file, where)
    stype = _str(raw, "type", file, where)
    if stype not in SOURCE_TYPES:
        raise _fail(file, where + "type", f"{stype!r} is not one of {', '.join(SOURCE_TYPES)}")
    for key in _REQUIRED_BY_TYPE[stype]:
        _str(raw, key, file, where)
    sha = raw.get("sha256")
    if sha is not None and not (isinstance(sha, str) and _SHA_RE.match(sha)):
        raise _fail(file, where + "sha256", f"must be 64 lower-case hex digits, got {sha!r}")
    size = raw.get("size")
    if size is not None and not (isinstance(size, int) and size > 0):
        raise _fail(file, where + "size", f"must be a positive integer (bytes), got {size!r}")
    into = raw.get("into", card_name)
    if not isinstance(into, str) or not _NAME_RE.match(into):
        raise _fail(file, where + "into", f"must be a lower-case-kebab folder name, got {into!r}")
    code = raw.get("code")
    return Source(id=sid, type=stype, into=into, what=str(raw.get("what", "")).strip(), url=raw.get("url"),
                  gdrive_id=raw.get("gdrive_id"), code=None if code is None else str(code), filename=raw.get("filename"),
                  sha256=sha, size=size, note=str(raw.get("note", "")).strip())


def _parse_layout(raw: Any, groups: set[str], file: Path) -> tuple[LayoutRule, ...]:
    if not isinstance(raw, dict) or not raw:
        raise _fail(file, "layout", "must be a non-empty mapping of standard-layout folder -> rule")
    rules = []
    for target, rule in raw.items():
        key = f"layout.{target}"
        if target not in TARGETS:
            raise _fail(file, key, f"unknown target (valid: {', '.join(TARGETS)})")
        if not isinstance(rule, dict) or set(rule) - {"from", "paths", "required"}:
            raise _fail(file, key, "must be a mapping with keys from, paths, required")
        group = rule.get("from")
        if group not in groups:
            raise _fail(file, key + ".from", f"{group!r} is not the 'into' of any source ({', '.join(sorted(groups))})")
        paths = rule.get("paths")
        if isinstance(paths, str):
            paths = [paths]
        if not paths or not all(isinstance(p, str) and p and not p.startswith("/") and ".." not in p for p in paths):
            raise _fail(file, key + ".paths", "must be one or more relative glob patterns (no '..', no leading '/')")
        required = rule.get("required", True)
        if not isinstance(required, bool):
            raise _fail(file, key + ".required", f"must be true or false, got {required!r}")
        rules.append(LayoutRule(target, group, tuple(paths), required))
    targets = {r.target for r in rules}
    for inp, gt in PAIRS:
        if gt in targets and inp not in targets:
            raise _fail(file, f"layout.{gt}", f"ground truth without inputs: add layout.{inp}")
    return tuple(rules)


def parse_card(data: Any, file: Path, text: str = "") -> Card:
    """Validate parsed YAML ``data`` read from ``file``; raise :class:`CardError` naming the field."""
    name, kind = _parse_name_kind(data, file)
    text_fields = {k: _str(data, k, file, "") for k in ("title", "description", "citation", "licence", "prepare")}
    optional = {k: _str(data, k, file, "", required=False) or "" for k in ("homepage", "notes")}
    sources, layout = _parse_sources_layout(data, name, kind, file)
    expect, manifest, path, generator = _parse_extras(data, kind, file)
    return Card(name=name, kind=kind, file=file, digest=hashlib.sha256(text.encode()).hexdigest()[:16],
                sources=sources, layout=layout, expect=dict(expect),
                manifest=(file.parent / manifest) if manifest else None, path=path, generator=generator or {},
                **text_fields, **optional)


def _parse_name_kind(data: Any, file: Path) -> tuple[str, str]:
    """Check that ``data`` is a mapping of known fields; its valid ``name`` and ``kind``."""
    if not isinstance(data, dict):
        raise _fail(file, "<top>", "a card must be a YAML mapping")
    unknown = set(data) - _CARD_KEYS
    if unknown:
        raise _fail(file, min(unknown), f"unknown field (valid: {', '.join(sorted(_CARD_KEYS))})")
    name = _str(data, "name", file, "")
    if not _NAME_RE.match(name) or name == RAW:
        raise _fail(file, "name", f"{name!r} must be lower-case-kebab (a-z, 0-9, '-') and not {RAW!r}")
    if file.suffix == ".yaml" and file.stem != name:
        raise _fail(file, "name", f"{name!r} must equal the file name {file.stem!r}")
    kind = _str(data, "kind", file, "")
    if kind not in KINDS:
        raise _fail(file, "kind", f"{kind!r} is not one of {', '.join(KINDS)}")
    return name, kind


def _parse_sources_layout(data: dict, name: str, kind: str, file: Path
                          ) -> tuple[tuple[Source, ...], tuple[LayoutRule, ...]]:
    """The card's ``sources`` and ``layout`` (only download and manual cards have them)."""
    raw_sources = data.get("sources") or []
    if not isinstance(raw_sources, list):
        raise _fail(file, "sources", "must be a list")
    sources = tuple(_parse_source(s, i, name, file) for i, s in enumerate(raw_sources))
    ids = [s.id for s in sources]
    if len(set(ids)) != len(ids):
        raise _fail(file, "sources", f"duplicate source id in {ids}")
    layout: tuple[LayoutRule, ...] = ()
    if kind in ("download", "manual"):
        if not sources:
            raise _fail(file, "sources", f"a {kind} card needs at least one source")
        if kind == "download" and not any(s.automatic for s in sources):
            raise _fail(file, "kind", "download card without an automatic source (http, gdrive, gdrive-folder); use kind: manual")
        layout = _parse_layout(data.get("layout"), {s.into for s in sources}, file)
    elif data.get("layout") is not None or sources:
        raise _fail(file, "layout" if data.get("layout") is not None else "sources", f"not used by kind {kind}")
    return sources, layout


def _parse_extras(data: dict, kind: str, file: Path
                  ) -> tuple[dict[str, int], str | None, str | None, dict[str, Any] | None]:
    """The card's ``expect``, ``manifest``, ``path`` (folder cards) and ``generator`` (synthetic cards)."""
    expect = data.get("expect") or {}
    if not isinstance(expect, dict) or not all(k in TARGETS and isinstance(v, int) and v > 0 for k, v in expect.items()):
        raise _fail(file, "expect", f"must map standard-layout folders ({', '.join(TARGETS)}) to positive counts")
    manifest = data.get("manifest")
    if manifest is not None and not (isinstance(manifest, str) and manifest.endswith(".sha256")):
        raise _fail(file, "manifest", f"must be a path ending in .sha256 relative to {file.parent}, got {manifest!r}")
    path = data.get("path")
    if (kind == "folder") != (path is not None):
        raise _fail(file, "path", "required for kind folder" if kind == "folder" else f"not used by kind {kind}")
    generator = data.get("generator")
    if kind == "synthetic":
        generator = _check_generator(generator, file)
    elif generator is not None:
        raise _fail(file, "generator", f"not used by kind {kind}")
    return expect, manifest, path, generator


def _check_generator(generator: Any, file: Path) -> dict[str, Any]:
    from benchmark.data.synthetic import GeneratorParams

    if not isinstance(generator, dict):
        raise _fail(file, "generator", "required for kind synthetic (a mapping of generator parameters)")
    valid = {f.name: f for f in fields(GeneratorParams)}
    for key, value in generator.items():
        if key not in valid:
            raise _fail(file, f"generator.{key}", f"unknown parameter (valid: {', '.join(valid)})")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise _fail(file, f"generator.{key}", f"must be a non-negative integer, got {value!r}")
    try:
        GeneratorParams(**generator)
    except ValueError as exc:
        raise _fail(file, "generator", str(exc)) from None
    return dict(generator)


def load_card_file(file: str | Path) -> Card:
    """Read and validate one card file."""
    file = Path(file)
    try:
        text = file.read_text()
        data = yaml.safe_load(text)
    except OSError as exc:
        raise CardError(f"{file}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise CardError(f"{file}: <yaml>: not valid YAML ({exc})") from None
    return parse_card(data, file, text)


def card_names(cards_dir: Path = CARDS_DIR) -> list[str]:
    return sorted(p.stem for p in cards_dir.glob("*.yaml"))


def load_card(name: str, cards_dir: Path = CARDS_DIR) -> Card:
    """The card ``datasets/<name>.yaml``; unknown names raise :class:`UnknownNameError`."""
    file = cards_dir / f"{name}.yaml"
    if not _NAME_RE.match(name) or not file.is_file():
        raise UnknownNameError(unknown_name_message("dataset", name, card_names(cards_dir)))
    return load_card_file(file)


def list_cards(cards_dir: Path = CARDS_DIR) -> list[Card]:
    """Every card, validated, sorted by name."""
    return [load_card_file(cards_dir / f"{n}.yaml") for n in card_names(cards_dir)]

"""A mirror of the upstream downloads, chosen with ``$BACKLIT_BENCH_MIRROR`` (a base URL).

With a mirror set, ``prepare`` fetches every raw folder (source group: the ``into`` of a card's
sources) from ``<mirror>/<group>/`` instead of the card's sources, whatever their type (HTTP,
Google Drive, Baidu, manual): a mirror also provides the files of manual-only sources. The file
``<mirror>/<group>/SHA256SUMS`` lists the group's files (``sha256sum`` format, plain file names);
each is downloaded (resumable), checked against that list and extracted like any download.

Checksums: the list states what the mirror serves. A file whose upstream checksum (a card
source's ``sha256`` for its ``filename``) differs from the list's is used with a warning: the
mirror holds other files than upstream (the test fixtures do). A mirror of the real files lists upstream's checksums and agrees
with the cards. Which mirror and which files were used is recorded in ``<raw folder>/.mirror.json``
and in each prepared dataset's ``prepared.json``. Without the mirror nothing changes.

The released enhancers (:mod:`benchmark.weights`) come from the group ``weights`` of the same
mirror (``<mirror>/weights/<file name>``, listed in its ``SHA256SUMS``) when they are not found
locally, under the same checksum rule.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from backlit_core.atomic import write_json
from benchmark.data.download import extract_all, fetch_http
from benchmark.data.errors import SourceUnavailable
from benchmark.data.manifest import parse_manifest

log = logging.getLogger("benchmark.data")
MIRROR_ENV = "BACKLIT_BENCH_MIRROR"
LISTING = "SHA256SUMS"
RECORD = ".mirror.json"  # in the raw folder: the mirror and the files it served


def mirror_url() -> str | None:
    """The mirror base URL (``$BACKLIT_BENCH_MIRROR`` without a trailing ``/``), or None."""
    value = os.environ.get(MIRROR_ENV, "").strip().rstrip("/")
    return value or None


def group_url(base: str, group: str) -> str:
    return f"{base}/{group}/"


def _listing(base: str, group: str, timeout: float) -> dict[str, str]:
    import requests

    url = group_url(base, group) + LISTING
    try:
        r = requests.get(url, timeout=timeout)
        r.raise_for_status()
    except requests.RequestException as exc:
        raise SourceUnavailable(f"{url}: cannot read the mirror's list of files for '{group}' "
                                f"({exc.__class__.__name__}: {exc}); {MIRROR_ENV}={base}") from None
    files = parse_manifest(r.text, url)
    bad = [name for name in files if "/" in name or "\\" in name or name.startswith(".") or ".." in name]
    if bad or not files:
        raise SourceUnavailable(f"{url}: " + (f"file names must be plain names in the group's folder, got {bad[:3]}"
                                              if bad else "lists no files"))
    return files


def _check(group: str, name: str, listed: str, expected: str | None) -> None:
    if expected and expected != listed:
        log.warning("%s: the mirror's %s has sha256 %s, upstream's has %s; checking it against the mirror's %s "
                    "instead (%s is set)", group, name, listed, expected, LISTING, MIRROR_ENV)


def fetch_listed(base: str, group: str, name: str, dest: Path, expected: str | None, timeout: float = 60.0) -> str:
    """Download the mirror's ``<group>/<name>`` to ``dest``, verified against the group's list;
    return its listed sha256 (``expected``: upstream's, compared with a warning)."""
    files = _listing(base, group, timeout)
    if name not in files:
        raise SourceUnavailable(f"{group_url(base, group)}{LISTING}: does not list {name}; {MIRROR_ENV}={base}")
    _check(group, name, files[name], expected)
    fetch_http(group_url(base, group) + name, dest, files[name], timeout=timeout)
    return files[name]


def fetch_group(base: str, group: str, raw: Path, card_sha256: dict[str, str], timeout: float = 60.0) -> dict[str, str]:
    """Download the files of ``group`` listed by the mirror into ``raw``, verified, and extract them.

    ``card_sha256`` maps file names to the checksums the card gives (a differing one is warned
    about). Returns file name -> sha256 as listed, also saved in ``raw/.mirror.json``.
    """
    files = _listing(base, group, timeout)
    for name, sha in sorted(files.items()):
        _check(group, name, sha, card_sha256.get(name))
        fetch_http(group_url(base, group) + name, raw / name, sha, timeout=timeout)
    extract_all(raw)
    write_json(raw / RECORD, {"mirror": base, "group": group, "files": files})
    log.info("%s: %d file(s) from the mirror %s", group, len(files), group_url(base, group))
    return files


def mirror_record(raw: Path) -> dict | None:
    """What ``raw/.mirror.json`` says about the mirror that filled ``raw`` (None if not a mirror)."""
    try:
        return json.loads((raw / RECORD).read_text())
    except (OSError, ValueError):
        return None

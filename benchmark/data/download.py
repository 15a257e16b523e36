"""Fetching upstream files: HTTP with resume (``Range``), Google Drive via gdown, archive extraction.

Every fetch writes to ``<file>.part`` first and renames only after the sha256 (when known) matches;
a mismatch deletes the file and downloads it once more, then raises :class:`ChecksumError`.
"""
from __future__ import annotations

import logging
import os
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from backlit_core.hashing import sha256_of
from benchmark.data.errors import ChecksumError, SourceUnavailable

log = logging.getLogger("benchmark.data")
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


def _part(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _is_complete(dest: Path, sha256: str | None, size: int | None) -> bool:
    if not dest.is_file() or (size is not None and dest.stat().st_size != size):
        return False
    return sha256 is None or sha256_of(dest) == sha256


def _checked(fetch: Callable[[Path], None], dest: Path, sha256: str | None, origin: str) -> Path:
    """Run ``fetch(part)``; verify; on a mismatch delete and fetch once more; raise if still wrong."""
    part = _part(dest)
    got = ""
    for attempt in (1, 2):
        fetch(part)
        got = sha256_of(part) if sha256 else ""
        if got == (sha256 or ""):
            os.replace(part, dest)
            return dest
        part.unlink(missing_ok=True)
        if attempt == 1:
            log.warning("%s: sha256 %s does not match the expected %s; downloading it again", dest.name, got, sha256)
    raise ChecksumError(
        f"{dest}: sha256 mismatch after 2 downloads from {origin} (expected {sha256}, got {got}); the file was "
        f"deleted. The source may have changed or a proxy altered it: download it yourself, check it with "
        f"`sha256sum`, and put it at {dest}."
    )


def _http_fetch(url: str, part: Path, timeout: float, size: int | None) -> None:
    """Download ``url`` into ``part``, resuming from its current length when the server honours Range."""
    import requests
    from tqdm import tqdm

    have = part.stat().st_size if part.is_file() else 0
    if size is not None and have > size:
        part.unlink()
        have = 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with requests.get(url, headers=headers, stream=True, timeout=timeout) as r:
            if have and r.status_code == 416:  # nothing left to send: the partial file is complete
                return
            r.raise_for_status()
            if have and r.status_code != 206:  # server ignored Range: start over
                have = 0
            if have and not r.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
                part.unlink()
                raise SourceUnavailable(f"{url}: the server sent another byte range than asked; "
                                        f"partial file deleted, run again")
            length = int(r.headers.get("content-length", 0)) or None
            total = have + length if length else size
            with open(part, "ab" if have else "wb") as f, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, desc=part.name[:-5], file=sys.stderr, leave=False
            ) as bar:
                for block in r.iter_content(1 << 14):
                    f.write(block)
                    bar.update(len(block))
    except requests.RequestException as exc:
        kept = part.stat().st_size if part.is_file() else 0
        resume = f"; {kept} bytes kept in {part} (run again to resume)" if kept else ""
        raise SourceUnavailable(f"{url}: download failed ({_why(exc, url, timeout)}){resume}") from None
    if size is not None and part.stat().st_size < size:
        raise SourceUnavailable(f"{url}: connection ended after {part.stat().st_size} of {size} bytes; run again to resume")


def _why(exc: Exception, url: str, timeout: float) -> str:
    """A short reason for a failed request (requests' own text nests several exceptions)."""
    from urllib.parse import urlparse

    import requests

    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code} {exc.response.reason}"
    if isinstance(exc, requests.Timeout):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, requests.ConnectionError):
        return f"cannot connect to {urlparse(url).hostname}: offline, or the host is unreachable"
    return f"{exc.__class__.__name__}: {str(exc)[:200]}"


def fetch_http(url: str, dest: str | Path, sha256: str | None = None, size: int | None = None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` (resumable, verified); return ``dest``. A verified ``dest`` is kept."""
    dest = Path(dest)
    if _is_complete(dest, sha256, size):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    return _checked(lambda part: _http_fetch(url, part, timeout, size), dest, sha256, url)


def _gdown_failures() -> tuple[type[Exception], ...]:
    """What gdown raises when Drive refuses or the network fails."""
    import requests
    from gdown.exceptions import DownloadError, FileURLRetrievalError

    return (DownloadError, FileURLRetrievalError, requests.RequestException, OSError, ValueError)


def _gdown_error(what: str, exc: Exception) -> SourceUnavailable:
    return SourceUnavailable(f"{what}: Google Drive download failed ({exc.__class__.__name__}: {str(exc).strip()[:300]})")


def fetch_gdrive(file_id: str, dest: str | Path, sha256: str | None = None, size: int | None = None) -> Path:
    """Download one Drive file with gdown (resumable, verified)."""
    import gdown

    dest = Path(dest)
    if _is_complete(dest, sha256, size):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    link = f"https://drive.google.com/file/d/{file_id}/view"

    def fetch(part: Path) -> None:
        try:
            gdown.download(id=file_id, output=str(part), quiet=False, resume=True)
        except _gdown_failures() as exc:
            raise _gdown_error(link, exc) from None
        if not part.is_file():
            raise SourceUnavailable(f"{link}: gdown returned without writing {part}")

    return _checked(fetch, dest, sha256, link)


def fetch_gdrive_folder(folder_id: str, dest_dir: str | Path) -> Path:
    """Download a Drive folder's files into ``dest_dir`` with gdown (no checksums are published)."""
    import gdown

    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    link = f"https://drive.google.com/drive/folders/{folder_id}"
    try:
        files = gdown.download_folder(id=folder_id, output=str(dest_dir), quiet=False, resume=True)
    except _gdown_failures() as exc:
        raise _gdown_error(link, exc) from None
    if not files:
        raise SourceUnavailable(f"{link}: gdown downloaded nothing (private folder, quota exceeded, or too many files)")
    return dest_dir


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _marker(archive: Path) -> Path:
    return archive.with_name(f".{archive.name}.extracted")


def _stamp(archive: Path) -> str:
    st = archive.stat()
    return f"{st.st_size} {int(st.st_mtime)}"


def _inside(root: Path, member: str) -> bool:
    target = (root / member).resolve()
    return target == root or root in target.parents


def extract(archive: str | Path, dest_dir: str | Path | None = None) -> Path:
    """Extract a zip or tar archive into ``dest_dir`` (default: beside it), once; refuse unsafe paths."""
    from tqdm import tqdm

    archive = Path(archive)
    dest = Path(dest_dir or archive.parent).resolve()
    marker = _marker(archive)
    if marker.is_file() and marker.read_text() == _stamp(archive):
        return dest
    try:
        if archive.name.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                members = zf.infolist()
                bad = [m.filename for m in members if not _inside(dest, m.filename)]
                if bad:
                    raise SourceUnavailable(f"{archive}: refusing to extract paths outside {dest}: {bad[:3]}")
                for m in tqdm(members, desc=f"extract {archive.name}", unit="file", file=sys.stderr, leave=False):
                    zf.extract(m, dest)
        else:
            with tarfile.open(archive) as tf:
                members = tf.getmembers()
                bad = [m.name for m in members if not _inside(dest, m.name) or m.issym() or m.islnk() or m.isdev()]
                if bad:
                    raise SourceUnavailable(f"{archive}: refusing unsafe members (outside {dest}, links or devices): {bad[:3]}")
                for m in tqdm(members, desc=f"extract {archive.name}", unit="file", file=sys.stderr, leave=False):
                    tf.extract(m, dest, set_attrs=False)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        raise SourceUnavailable(f"{archive}: not a readable archive ({exc}); delete it and download it again") from None
    marker.write_text(_stamp(archive))
    return dest


def pending_archives(folder: Path) -> list[Path]:
    """Archives under ``folder`` not extracted yet."""
    return sorted(p for p in folder.rglob("*") if is_archive(p) and not (
        _marker(p).is_file() and _marker(p).read_text() == _stamp(p)))


def extract_all(folder: Path) -> list[Path]:
    """Extract every archive under ``folder`` beside itself (already-extracted ones are skipped)."""
    archives = sorted(p for p in folder.rglob("*") if is_archive(p))
    for a in archives:
        extract(a)
    return archives

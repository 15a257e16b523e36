"""The lock file (requirements/lock-cuda.txt): complete, consistent with pyproject.toml, installed exactly, and
recorded in every provenance record."""
from __future__ import annotations

import hashlib
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from backlit_core import provenance
from backlit_core.paths import PROJECT_ROOT
from backlit_core.provenance import canonical_name, lock_differences, read_lock

tomllib = pytest.importorskip("tomllib")
LOCK = PROJECT_ROOT / provenance.DEFAULT_LOCK


def _project_requirements() -> list[Requirement]:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [Requirement(r) for r in [*project["dependencies"], *extras["test"], *extras["dev"]]]


def test_lock_pins_every_requirement_of_pyproject_within_its_range() -> None:
    pins = read_lock(LOCK)
    assert len(pins) >= 40
    for name in ("torch", "torchvision", "pytest", "statsmodels", "pip", "setuptools", "pip-tools", "nvidia-cublas"):
        assert name in pins, name
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    stale = {str(req): pins.get(canonical_name(req.name)) for req in _project_requirements()
             if not req.specifier.contains(pins.get(canonical_name(req.name), "0.dev0"), prereleases=True)}
    assert not stale, f"{LOCK.name} does not satisfy pyproject.toml (run `make lock`): {stale}"


def test_read_lock_takes_pins_and_skips_comments_and_options(tmp_path: Path) -> None:
    lock = tmp_path / "lock.txt"
    lock.write_text("# header\n--extra-index-url https://example.org/cpu\nFoo_Bar.baz==1.0.post1\n    # via x\n"
                    "torch==2.14.1+cpu\n")
    assert read_lock(lock) == {"foo-bar-baz": "1.0.post1", "torch": "2.14.1+cpu"}


def test_lock_differences_name_each_mismatch_and_exempt_the_project() -> None:
    pins = {"numpy": "2.4.6", "torch": "2.14.1", "certifi": "2026.10.19.post1", "scipy": "1.17.1"}
    installed = {"numpy": "2.4.6", "torch": "2.14.1+cpu", "certifi": "2026.10.19-post1", "ruff": "0.17.6",
                 "backlit-bench": "0.1.0"}
    assert lock_differences(pins, installed) == {"torch": ("2.14.1", "2.14.1+cpu"), "scipy": ("1.17.1", None),
                                                 "ruff": (None, "0.17.6")}
    assert lock_differences({"numpy": "2.4.6"}, {"numpy": "2.4.6", "backlit-bench": "0.1.0"}) == {}


def test_installed_environment_is_exactly_the_lock() -> None:
    marker = Path(sys.prefix) / ".installed"
    if not marker.is_file() or not marker.read_text().strip():
        pytest.skip(f"not inside a venv made by `make install` ({marker} names no lock)")
    lock = provenance.lock_path()
    pins = read_lock(lock)
    installed = provenance.installed_distributions()
    fix = f"`rm {marker}; make install` reinstalls it"
    wrong = {name: (version, metadata.version(name) if name in installed else None) for name, version in pins.items()
             if name not in installed or metadata.version(name) != version}
    assert not wrong, f"installed versions differ from {lock} ({{name: (locked, installed)}}; {fix}): {wrong}"
    extra = installed.keys() - pins.keys() - {provenance.PROJECT}
    assert not extra, f"installed but not in {lock} ({fix}): {sorted(extra)}"
    assert provenance.installed_environment()["lock_matches"] is True


@pytest.fixture
def fresh_environment():
    provenance.installed_environment.cache_clear()
    yield
    provenance.installed_environment.cache_clear()


def test_provenance_records_environment_and_lock_hashes(fresh_environment: None) -> None:
    first: dict[str, str] = {}
    for dist in metadata.distributions():
        first.setdefault(canonical_name(dist.metadata["Name"]), dist.version)
    listing = "\n".join(sorted(f"{name}=={version}" for name, version in first.items()))
    record = provenance.collect_provenance(seed=3)
    lock = provenance.lock_path()
    assert record["environment_sha256"] == hashlib.sha256(listing.encode()).hexdigest()
    assert record["lock_sha256"] == hashlib.sha256(lock.read_bytes()).hexdigest()
    assert record["lock_file"] == str(lock.relative_to(PROJECT_ROOT))
    assert isinstance(record["lock_matches"], bool)
    assert provenance.installed_environment() is provenance.installed_environment()  # computed once per process


def test_lock_matches_only_when_every_installed_version_is_pinned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   fresh_environment: None) -> None:
    lock = tmp_path / "lock.txt"
    monkeypatch.setattr(provenance, "lock_path", lambda: lock)
    installed = provenance.installed_distributions()
    lock.write_text("".join(f"{n}=={v}\n    # via x\n" for n, v in installed.items() if n != provenance.PROJECT))
    assert provenance.installed_environment()["lock_matches"] is True
    assert provenance.installed_environment()["lock_sha256"] == hashlib.sha256(lock.read_bytes()).hexdigest()
    provenance.installed_environment.cache_clear()
    lock.write_text(lock.read_text() + "not-installed-here==1.0\n")
    assert provenance.installed_environment()["lock_matches"] is False
    provenance.installed_environment.cache_clear()
    lock.unlink()
    assert provenance.installed_environment() | {"environment_sha256": None} == {
        "environment_sha256": None, "lock_file": str(lock), "lock_sha256": None, "lock_matches": None}

"""Shared fixtures: the reference data beside the project, offline environment."""
from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_server import Server

from backlit_core.paths import PROJECT_ROOT, REFERENCE_DIR

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the packages set it, before torch loads
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


# The longest modules first, so that with `pytest -n 2 --dist loadfile` (make test) they start at once
# on different workers and the short ones fill in around them.
LONGEST_FIRST = ("test_paper_profile.py", "test_pipeline.py", "test_repro.py", "test_methods_act.py", "test_gpu_check.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)


@pytest.fixture(scope="module")
def embedding_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh ``$BACKLIT_BENCH_CACHE`` for one test module (reference embeddings computed anew)."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BACKLIT_BENCH_CACHE", str(cache))
        yield cache


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """``../shared/reference``; tests that need it skip when it is absent."""
    if not (REFERENCE_DIR / "README.md").is_file():
        pytest.skip(f"reference data not found at {REFERENCE_DIR} (set BACKLIT_BENCH_REFERENCE)")
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture
def server() -> Iterator[Server]:
    """A local HTTP server on 127.0.0.1 (tests/local_server.py), stopped after the test."""
    s = Server()
    t = threading.Thread(target=s.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()

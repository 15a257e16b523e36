"""Datasets: cards (``datasets/*.yaml``), download, manifests, the embedded synthetic set, user folders.

Every dataset is prepared into ``<data root>/<name>/`` (``datasets/data`` or ``$BACKLIT_BENCH_DATA``)
in the standard layout described in ``docs/architecture.md``.
"""
from __future__ import annotations

from benchmark.data.cards import TARGETS, Card, list_cards, load_card
from benchmark.data.errors import CardError, ChecksumError, DatasetError, SourceUnavailable
from benchmark.data.pairs import test_pairs
from benchmark.data.paths import data_root, dataset_dir
from benchmark.data.prepare import prepare, status

__all__ = ["TARGETS", "Card", "CardError", "ChecksumError", "DatasetError", "SourceUnavailable", "data_root",
           "dataset_dir", "list_cards", "load_card", "prepare", "status", "test_pairs"]

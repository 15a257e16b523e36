"""Exceptions of the dataset layer; every message names the file or dataset and the cause."""
from __future__ import annotations


class DatasetError(RuntimeError):
    """A dataset cannot be prepared, read or verified."""


class CardError(DatasetError):
    """A dataset card is invalid: ``<file>: <field>: <problem>``."""


class SourceUnavailable(DatasetError):
    """A source could not be fetched (offline, manual-only, server error); says what to do instead."""


class ChecksumError(DatasetError):
    """A downloaded file kept the wrong sha256 after one retry."""

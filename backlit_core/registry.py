"""A tiny name -> object registry with lazy entries and "did you mean" errors."""
from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised for an unknown registry name; the message lists valid names and a suggestion."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


def unknown_name_message(kind: str, name: str, valid: list[str]) -> str:
    """``unknown method 'rav'; did you mean 'rave'? Valid: clip-lit, latent-prompt, rave``."""
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {kind} {name!r}{hint} Valid: {', '.join(sorted(valid))}"


class Registry(Generic[T]):
    """Maps names to objects; entries may be ``"module:attr"`` strings imported on first use."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = {}

    def register(self, name: str, obj: T | str | None = None) -> Callable[[T], T] | None:
        """Register ``obj`` under ``name``; without ``obj`` acts as a decorator."""
        if obj is not None:
            self._entries[name] = obj
            return None

        def deco(o: T) -> T:
            self._entries[name] = o
            return o

        return deco

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise UnknownNameError(unknown_name_message(self.kind, name, self.names()))
        entry = self._entries[name]
        if isinstance(entry, str) and ":" in entry:
            module, attr = entry.split(":", 1)
            entry = getattr(importlib.import_module(module), attr)
            self._entries[name] = entry
        return entry  # type: ignore[return-value]

    def resolve(self, name: str) -> Any:
        return self.get(name)

"""The settings a method declares for itself (its class's ``method_parameters``), apart from the shared schedule.

A :class:`Parameter` names a setting, its upstream default, its type, and the params.yaml key it
comes from: ``train.<method>.<name>`` (also ``bench train --set <name>=VALUE``). A schedule may give
it another default (``by_schedule``, e.g. the CPU-sized ``quick`` one). :func:`split_settings`
takes a method's own settings out of the ``train.<method>`` overrides and leaves the rest to
:func:`methods.schedule.make_schedule`; the trainer passes them to the method as
``MethodContext.settings`` and records them (``method_settings``) in the checkpoint and summary.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Parameter:
    """One setting of a method: name, upstream default, accepted values, help text."""

    name: str
    default: object  # the upstream code's value (the ``paper`` schedule's)
    kind: type  # int, float or str; ints are accepted for float, bools never
    help: str
    choices: tuple[str, ...] = ()  # str: the accepted values; number: words accepted besides a number
    positive: bool = False  # a number must be > 0
    by_schedule: Mapping[str, object] = field(default_factory=dict)  # schedule name -> its default
    recorded: bool = True  # False: kept out of method_settings (a file path; the method records the file itself)

    def key(self, method: str) -> str:
        """Where params.yaml sets it."""
        return f"train.{method}.{self.name}"

    def default_for(self, schedule: str) -> object:
        return self.by_schedule.get(schedule, self.default)

    def check(self, value: object) -> object:
        """``value`` if it is valid, else ValueError naming the setting and what it accepts."""
        if isinstance(value, str) and value in self.choices:
            return value
        ok = not isinstance(value, bool) and (
            isinstance(value, int) if self.kind is int else
            isinstance(value, (int, float)) if self.kind is float else
            isinstance(value, str) and (not self.choices or value in self.choices))
        if ok and self.positive and not value > 0:  # type: ignore[operator]
            ok = False
        if not ok:
            raise ValueError(f"training setting {self.name} must be {self._accepts()}, got {value!r}")
        return value

    def _accepts(self) -> str:
        words = " or ".join(repr(c) for c in self.choices)
        if self.kind is str:
            return f"one of {words}" if self.choices else "a string"
        number = ("a positive " if self.positive else "a ") + ("integer" if self.kind is int else "number")
        return f"{number} or {words}" if self.choices else number


def declared(cls: type) -> tuple[Parameter, ...]:
    """The parameters ``cls`` declares (none for a class without ``method_parameters``)."""
    return tuple(getattr(cls, "method_parameters", ()))


def split_settings(cls: type, schedule: str, overrides: Mapping[str, object] | None) -> tuple[dict, dict]:
    """``(settings, rest)``: every parameter of ``cls`` (its value in ``overrides``, else its default
    under ``schedule``), checked, and the overrides that are not the method's."""
    rest = dict(overrides or {})
    settings = {p.name: p.check(rest.pop(p.name)) if p.name in rest else p.default_for(schedule) for p in declared(cls)}
    return settings, rest


def recorded(params: Iterable[Parameter], settings: Mapping[str, object]) -> dict:
    """The settings a run records (checkpoint, summary): all but the unrecorded ones."""
    return {p.name: settings[p.name] for p in params if p.recorded and p.name in settings}


def complete(params: Iterable[Parameter], given: Mapping[str, object]) -> dict:
    """``given`` checked, with the upstream default of every parameter it lacks."""
    return {p.name: p.check(given[p.name]) if p.name in given else p.default for p in params}

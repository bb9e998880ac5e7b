"""One shape for every family fedot chooses from by name, the way peft registers its tuners.

Emulator methods, owner corpora, tasks, tuning modes, partitioning schemes, attacks, aggregation rules, DP modes,
delivery modes, alignments, learning-rate schedules and tier policies are each a :class:`Registry`: a mapping from a
name to an :class:`Entry` holding the thing itself (a class, an instance or a function), its one-line help, its
settings group (a dataclass whose fields become ``<prefix>-<name>-<field>`` run-config keys through
:func:`fedot.settings.registry_group`) and its limits (what it needs to work, e.g. how many replies a rule needs).
A member registers itself next to its code; the CLI, the run config, the checks and the docs read the registry, so
adding a member is adding its module and nothing else names it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, TypeVar

T = TypeVar("T")
_MISSING = object()


class UnknownName(ValueError):
    pass


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    value: T
    help: str
    settings: type | None = None  # the member's own settings dataclass, if it has options
    limits: Mapping[str, Any] = field(default_factory=dict)

    def limit(self, key: str, default=None):
        return self.limits.get(key, default)


class Registry(Generic[T]):
    """``name -> Entry``; ``registry[name]`` is the registered thing, :meth:`entry` the whole record."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, value: Any = _MISSING, *, help: str, settings: type | None = None,
                 **limits) -> Any:
        """Register ``value`` under ``name``; without ``value`` a decorator that registers what it decorates."""

        def add(obj):
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = Entry(name, obj, help, settings, MappingProxyType(dict(limits)))
            return obj

        return add if value is _MISSING else add(value)

    def entry(self, name: str) -> Entry[T]:
        if name not in self._entries:
            close = difflib.get_close_matches(str(name), list(self._entries), n=1)
            raise UnknownName(f"unknown {self.kind} {name!r}; choose one of {', '.join(self._entries)}"
                              + (f" (did you mean {close[0]!r}?)" if close else ""))
        return self._entries[name]

    def __getitem__(self, name: str) -> T:
        return self.entry(name).value

    def __contains__(self, name) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self, where: Callable[[Entry], bool] | None = None) -> tuple[str, ...]:
        return tuple(n for n, e in self._entries.items() if where is None or where(e))

    def entries(self) -> list[Entry[T]]:
        return list(self._entries.values())

    def help_text(self) -> str:
        """``name: help; ...`` of every member, for a selector setting's help."""
        return "; ".join(f"{e.name}: {e.help}" for e in self._entries.values())

    def settings_groups(self) -> dict[str, type]:
        """Each member's settings dataclass (members without options have none), for ``registry_group``."""
        return {n: e.settings for n, e in self._entries.items() if e.settings is not None}

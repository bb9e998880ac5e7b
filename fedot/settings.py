"""Settings declared once, everything else derived from the declaration.

A setting is a dataclass field made with :func:`setting`: its default, help text and valid range live there and
nowhere else. From the declarations fedot derives the flat Flower run-config keys (``emulator-distill-steps``), the
CLI flags with the same names (``--emulator-distill-steps``) and their ``--help``, type and range checks whose
messages name the key (a misspelt key names the closest valid one), the settings table in the README and the
``[tool.flwr.app.config]`` table of every sim (Flower 1.41 refuses ``--run-config`` keys an app does not declare, so
the full table is generated, see ``fedot.run.sim_folder``).

Nested concerns are fields made with :func:`group` (the group's keys get its prefix) or :func:`registry_group` (one
settings dataclass per registered method, such as each emulator compression method's, keyed
``<prefix>-<method>-<field>``). Values are the primitive types a Flower run config carries (bool, int, float, str);
"unset" is a declared sentinel (``-1``: all, ``0``: off) because TOML has no null. Relations between settings are
checked by a dataclass's own ``check()`` method, called after every field passed its declared checks.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any


class SettingError(ValueError):
    pass


def setting(default, help: str, *, ge=None, gt=None, le=None, lt=None, choices=None, key: str | None = None):
    """A declared setting. ``choices`` is a tuple or a callable returning one (for registries filled at import)."""
    meta = {"help": help, "ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices, "key": key}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def selector(registry, default: str, help: str, *, key: str | None = None, members: bool = True):
    """The setting that picks a member of a :class:`fedot.registry.Registry`: its choices are the members, and (with
    ``members``) its help lists each member's help."""
    f = setting(default, f"{help}: {registry.help_text()}" if members else help, choices=registry.names, key=key)
    f.metadata = {**f.metadata, "registry_of": registry}  # type: ignore[misc]
    return f


class Choice:
    """Mixin of a settings dataclass with a :func:`selector` field and an ``options`` :func:`registry_group`."""

    @classmethod
    def of(cls, name: str, **kwargs):
        """An instance choosing ``name``, e.g. ``TuningConfig.of("lora", rank=8)``: keyword arguments that are fields
        of the class set them, the others are options of the chosen member."""
        chooser = next(f for f in fields(cls) if "registry_of" in f.metadata)
        own = {f.name for f in fields(cls)}
        obj = cls(**{chooser.name: name}, **{k: v for k, v in kwargs.items() if k in own})
        options = {k: v for k, v in kwargs.items() if k not in own}
        if options:
            obj.options[name] = chooser.metadata["registry_of"].entry(name).settings(**options)
        return obj


def group(factory: Callable[[], Any], *, prefix: str = "", help: str = ""):
    """A nested settings dataclass; its keys are ``<prefix>-<key>`` (no prefix: its keys as declared)."""
    return field(default_factory=factory, metadata={"group": True, "prefix": prefix, "help": help})


def registry_group(registry: Callable[[], Mapping[str, type]], *, prefix: str):
    """One settings instance per registered name, keyed ``<prefix>-<name>-<key>``."""
    return field(default_factory=lambda: {name: cls() for name, cls in registry().items()},
                 metadata={"registry": registry, "prefix": prefix})


def _join(*parts: str) -> str:
    return "-".join(p for p in parts if p)


@dataclass(frozen=True)
class Declaration:
    """One setting as declared: where it lives in the tree, its flat key, type, default and checks."""

    key: str
    path: tuple[str, ...]
    type: Any
    default: Any
    help: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: Any = None

    @property
    def flag(self) -> str:
        return "--" + self.key

    def allowed(self) -> tuple | None:
        return tuple(self.choices()) if callable(self.choices) else self.choices

    def range_text(self) -> str:
        if self.allowed():
            return " | ".join(map(str, self.allowed()))
        low = f"[{self.ge:g}" if self.ge is not None else (f"({self.gt:g}" if self.gt is not None else "")
        high = f"{self.le:g}]" if self.le is not None else (f"{self.lt:g})" if self.lt is not None else "")
        if low and high:
            return f"{low}, {high}"
        if low:
            return f">= {self.ge:g}" if self.ge is not None else f"> {self.gt:g}"
        if high:
            return f"<= {self.le:g}" if self.le is not None else f"< {self.lt:g}"
        return {bool: "true | false", str: "text"}.get(self.type, self.type.__name__ if isinstance(self.type, type)
                                                       else "numbers")

    def coerce(self, value, where: str = "run config"):
        """The value if it has the declared type and range; otherwise an error naming the key and the fix."""
        name, t = f"{where} key '{self.key}'", self.type
        if t is bool:
            if not isinstance(value, bool):
                raise SettingError(f"{name} must be true or false, got {value!r}"
                                   + (" (a string: write it without quotes)" if isinstance(value, str) else ""))
        elif t is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise SettingError(f"{name} must be an integer, got {value!r}")
        elif t is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SettingError(f"{name} must be a number, got {value!r}")
            value = float(value)
            if not math.isfinite(value):
                raise SettingError(f"{name} must be finite, got {value!r}")
        elif t is str:
            if not isinstance(value, str):
                raise SettingError(f"{name} must be a string, got {value!r}")
        elif typing.get_origin(t) is list:
            item = typing.get_args(t)[0]
            values = value if isinstance(value, (list, tuple)) else [value]
            return [dataclasses.replace(self, type=item).coerce(v, where) for v in values]
        allowed = self.allowed()
        if allowed is not None and value not in allowed:
            close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
            raise SettingError(f"{name} is {value!r}; choose one of {', '.join(map(str, allowed))}"
                               + (f" (did you mean {close[0]!r}?)" if close else ""))
        bad = ((self.ge is not None and value < self.ge) or (self.gt is not None and value <= self.gt)
               or (self.le is not None and value > self.le) or (self.lt is not None and value >= self.lt))
        if bad:
            raise SettingError(f"{name} is {value!r}; it must be {self.range_text()}")
        return value


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def declarations(cls, prefix: str = "", path: tuple[str, ...] = ()) -> list[Declaration]:
    """Every setting of a settings dataclass (class or instance), nested groups included, in declaration order."""
    cls = cls if isinstance(cls, type) else type(cls)
    out: list[Declaration] = []
    hints = _hints(cls)
    for f in fields(cls):
        meta = f.metadata
        if meta.get("group"):
            out += declarations(f.default_factory(), _join(prefix, meta["prefix"]), path + (f.name,))
        elif "registry" in meta:
            for name, sub in meta["registry"]().items():
                out += declarations(sub, _join(prefix, meta["prefix"], name), path + (f.name, name))
        elif "help" in meta:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            out.append(Declaration(meta["key"] or _join(prefix, f.name.replace("_", "-")), path + (f.name,),
                                   hints[f.name], default, meta["help"], meta["ge"], meta["gt"], meta["le"],
                                   meta["lt"], meta["choices"]))
    return out


def _get(obj, path):
    for p in path:
        obj = obj[p] if isinstance(obj, dict) else getattr(obj, p)
    return obj


def _set(obj, path, value):
    parent = _get(obj, path[:-1])
    if isinstance(parent, dict):
        parent[path[-1]] = value
    else:
        setattr(parent, path[-1], value)


def _nodes(obj) -> Iterator:
    """Every settings dataclass in the tree, children before parents (so ``check`` sees valid parts)."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        if f.metadata.get("group"):
            yield from _nodes(value)
        elif "registry" in f.metadata:
            for sub in value.values():
                yield from _nodes(sub)
    yield obj


def validate(obj, where: str = "settings"):
    """Check every declared value of ``obj`` (types, ranges, choices), then each node's ``check()``; returns obj."""
    for d in declarations(obj):
        _set(obj, d.path, d.coerce(_get(obj, d.path), where))
    for node in _nodes(obj):
        check = getattr(node, "check", None)
        if callable(check):
            check()
    return obj


def _unknown(keys, known, where: str, renamed: Mapping[str, str] | None = None) -> SettingError:
    msgs = []
    for key in sorted(keys):
        if key in (renamed or {}):
            msgs.append(f"'{key}' (renamed '{renamed[key]}')")
            continue
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        msgs.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    return SettingError(f"unknown {where} key{'s' if len(msgs) > 1 else ''} {', '.join(msgs)}; "
                        "`fedot settings` lists every valid key")


def from_flat(cls, flat: Mapping[str, Any], where: str = "run config"):
    """An instance of ``cls`` from flat keys (missing keys keep their defaults), fully validated."""
    decls = {d.key: d for d in declarations(cls)}
    unknown = set(flat) - set(decls)
    if unknown:
        raise _unknown(unknown, list(decls), where, getattr(cls, "renamed", None))
    obj = cls()
    for key, value in flat.items():
        _set(obj, decls[key].path, decls[key].coerce(value, where))
    return validate(obj, where)


def migrate(cls, flat: Mapping[str, Any]) -> dict[str, Any]:
    """Flat settings written by an older fedot with keys since renamed (``cls.renamed``: old -> new) under their
    new keys, e.g. a run's own run_config.json when it is resumed."""
    renamed = getattr(cls, "renamed", {})
    return {renamed.get(k, k) if renamed.get(k, k) not in flat else k: v for k, v in flat.items()}


def to_flat(obj) -> dict[str, Any]:
    """Every setting of ``obj`` by flat key (the inverse of :func:`from_flat`)."""
    return {d.key: _get(obj, d.path) for d in declarations(obj)}


def changed(obj) -> dict[str, Any]:
    """The settings of ``obj`` that differ from their declared defaults."""
    return {d.key: _get(obj, d.path) for d in declarations(obj) if _get(obj, d.path) != d.default}


def add_arguments(parser: argparse.ArgumentParser, cls, skip: tuple[str, ...] = ()) -> None:
    """One ``--key`` flag per setting, with the declared help, default and range; unset flags stay unset."""
    for d in declarations(cls):
        if d.key in skip:
            continue
        kwargs: dict[str, Any] = {"dest": d.key, "default": argparse.SUPPRESS,
                                  "help": f"{d.help} (default {d.default!r}; {d.range_text()})".replace("%", "%%")}
        if d.type is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(d.type) is list:
            kwargs.update(nargs="+", type=typing.get_args(d.type)[0], metavar="X")
        else:
            kwargs.update(type=d.type, metavar=d.type.__name__.upper())
        parser.add_argument(d.flag, **kwargs)


def given(cls, args: argparse.Namespace) -> dict[str, Any]:
    """The flat settings of ``cls`` given as flags on the command line (see :func:`add_arguments`), unchecked."""
    return {d.key: getattr(args, d.key) for d in declarations(cls) if hasattr(args, d.key)}


def flags(cls, flat: dict[str, Any]) -> list[str]:
    """The command-line flags (see :func:`add_arguments`) that give the settings of ``cls`` in ``flat``: what a
    user types to reproduce them; keys that are not settings of ``cls`` are left out."""
    out: list[str] = []
    for d in declarations(cls):
        if d.key not in flat:
            continue
        value = flat[d.key]
        if d.type is bool:
            out.append(d.flag if value else "--no-" + d.key)
        elif typing.get_origin(d.type) is list:
            out += [d.flag, *map(str, value)]
        else:
            out += [d.flag, str(value)]
    return out


def from_args(cls, args: argparse.Namespace):
    """An instance of ``cls`` from the flags given on the command line (see :func:`add_arguments`)."""
    return from_flat(cls, given(cls, args), where="command-line")


def _fmt(value) -> str:
    return repr(value) if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)


def markdown_table(cls) -> str:
    """The settings of ``cls`` as a markdown table (key, default, valid values, what it does)."""
    lines = ["| key | default | valid | what |", "|---|---|---|---|"]
    for d in declarations(cls):
        valid = d.range_text().replace("|", "\\|")
        lines.append(f"| `{d.key}` | `{_fmt(d.default)}` | {valid} | {d.help} |")
    return "\n".join(lines) + "\n"


def settings_text(obj) -> str:
    """Every effective setting of ``obj``, one per line, marking those that differ from the default."""
    width = max(len(d.key) for d in declarations(obj))
    lines = []
    for d in declarations(obj):
        value = _get(obj, d.path)
        mark = "" if value == d.default else f"   (default {_fmt(d.default)})"
        lines.append(f"{d.key:<{width}} = {_fmt(value)}{mark}")
    return "\n".join(lines)


def toml_table(obj) -> str:
    """Every setting of ``obj`` as TOML lines, each with its help as a comment."""
    import tomli_w

    out = []
    for d in declarations(obj):
        value = tomli_w.dumps({"v": _get(obj, d.path)}).split("=", 1)[1].strip()
        out.append(f"{d.key} = {value}".ljust(43) + f" # {d.help}")
    return "\n".join(out) + "\n"

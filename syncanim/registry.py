"""Components found through Python entry points: one registration mechanism for built-ins and plugins.

Every entry point in a ``syncanim.*`` group resolves to a :class:`Spec`. Built-ins are declared in
syncanim's own ``pyproject.toml`` exactly like a third-party package would declare its own.
An entry that fails to import, or resolves to something that is not a ``Spec``, or repeats a name,
is recorded as *broken*: ``syncanim plugins`` shows it and using it raises :class:`PluginError`.

``SYNCANIM_PLUGINS`` (comma-separated ``group:name`` or ``name``) may narrow what loads; it never adds.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from pydantic import BaseModel, ValidationError

from .config import PluginSection, format_validation_error
from .errors import ConfigError, PluginError

log = logging.getLogger(__name__)

#: Entry-point groups, one per component kind, with what each kind does.
GROUPS: dict[str, str] = {
    "syncanim.decoders": "video/audio decoders for prep",
    "syncanim.trackers": "face landmark trackers",
    "syncanim.segmenters": "person / head / neck / torso / face segmenters",
    "syncanim.backgrounds": "background plate estimators",
    "syncanim.head_trackers": "head pose and camera trackers",
    "syncanim.expressions": "expression coefficient extractors (blinks, brows, mouth)",
    "syncanim.asr": "audio feature backends",
    "syncanim.renderers": "head / torso model families",
    "syncanim.metrics": "evaluation metrics",
}

def _always_available(config: BaseModel) -> str | None:
    return None


@dataclass(frozen=True)
class Spec:
    """What an entry point resolves to.

    ``build(config)`` makes the component from a validated ``config_model`` instance.
    ``check(config)`` returns ``None`` when the component can run here, else what is missing
    (a package, a weight file, a GPU) in words a user can act on.
    """

    name: str
    config_model: type[BaseModel]
    build: Callable[[Any], Any]
    description: str
    check: Callable[[Any], str | None] = _always_available


@dataclass(frozen=True)
class Entry:
    """One row of the registry: a usable spec, or a broken / not-installed record."""

    group: str
    name: str
    source: str  # distribution name and version
    spec: Spec | None = None
    error: str | None = None

    @property
    def broken(self) -> bool:
        return self.spec is None


@dataclass
class Registry:
    """A table of entries per group, filled lazily from entry points on first use."""

    entry_points: Iterable[metadata.EntryPoint] | None = None
    allow: frozenset[str] | None = None
    _table: dict[str, dict[str, Entry]] | None = field(default=None, repr=False)

    # -- loading -------------------------------------------------------------------------
    def _load(self) -> dict[str, dict[str, Entry]]:
        if self._table is not None:
            return self._table
        eps = self.entry_points
        if eps is None:
            eps = [ep for g in GROUPS for ep in metadata.entry_points(group=g)]
        table: dict[str, dict[str, Entry]] = {g: {} for g in GROUPS}
        for ep in sorted(eps, key=lambda e: (e.group, e.name)):
            if ep.group not in table:
                continue
            if self.allow is not None and ep.name not in self.allow and f"{ep.group}:{ep.name}" not in self.allow:
                continue
            source = _source_of(ep)
            if ep.name in table[ep.group]:
                prev = table[ep.group][ep.name]
                table[ep.group][ep.name] = Entry(
                    ep.group, ep.name, f"{prev.source}, {source}",
                    error=f"name registered twice (by {prev.source} and {source})",
                )
                continue
            try:
                obj = ep.load()
            except Exception as e:  # a third-party import can fail in any way; record it
                table[ep.group][ep.name] = Entry(ep.group, ep.name, source, error=f"import failed: {e!r}")
                continue
            if not isinstance(obj, Spec):
                err = f"{ep.value} is a {type(obj).__name__}, not a syncanim Spec"
                table[ep.group][ep.name] = Entry(ep.group, ep.name, source, error=err)
            elif obj.name != ep.name:
                err = f"entry point name {ep.name!r} does not match its spec name {obj.name!r}"
                table[ep.group][ep.name] = Entry(ep.group, ep.name, source, error=err)
            else:
                table[ep.group][ep.name] = Entry(ep.group, ep.name, source, spec=obj)
        self._table = table
        return table

    # -- queries -------------------------------------------------------------------------
    def entries(self, group: str | None = None) -> list[Entry]:
        """All entries, sorted by group then name (broken ones included)."""
        table = self._load()
        groups = [group] if group else list(table)
        return [table[g][n] for g in groups for n in sorted(table[g])]

    def get(self, group: str, name: str) -> Spec:
        """The spec registered as ``name`` in ``group``; raises PluginError if unknown or broken."""
        table = self._load()
        if group not in table:
            raise PluginError(f"unknown component group {group!r}")
        entry = table[group].get(name)
        if entry is None:
            known = ", ".join(sorted(n for n, e in table[group].items() if not e.broken)) or "none"
            raise PluginError(f"no {GROUPS[group]} component named {name!r} (registered: {known})",
                              hint="run `syncanim plugins` to see every component")
        if entry.spec is None:
            raise PluginError(f"component {name!r} ({group}) is unusable: {entry.error}")
        return entry.spec

    def resolve(self, group: str, section: PluginSection, where: str | None = None) -> tuple[Spec, BaseModel]:
        """Look up ``section.kind`` and validate the section's other keys against its config model.

        ``where`` names the section in errors (e.g. ``prep.masks``); the component name otherwise.
        """
        spec = self.get(group, section.kind)
        try:
            cfg = spec.config_model(**section.options())
        except ValidationError as e:
            raise ConfigError(format_validation_error(e, prefix=where or section.kind)) from e
        return spec, cfg

    def build(self, group: str, section: PluginSection, *, require_available: bool = True,
              where: str | None = None) -> Any:
        """Resolve, check that it can run here, and build the component (``where``: as in :meth:`resolve`)."""
        spec, cfg = self.resolve(group, section, where=where)
        if require_available:
            missing = spec.check(cfg)
            if missing:
                raise PluginError(f"component {spec.name!r} cannot run here: {missing}")
        return spec.build(cfg)


def _source_of(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "unknown"
    return f"{dist.metadata['Name']} {dist.version}"


def _allow_from_env(env: Mapping[str, str]) -> frozenset[str] | None:
    raw = env.get("SYNCANIM_PLUGINS", "").strip()
    if not raw:
        return None
    return frozenset(s.strip() for s in raw.split(",") if s.strip())


_default: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry over installed entry points (loaded once, lazily)."""
    global _default
    if _default is None:
        _default = Registry(allow=_allow_from_env(os.environ))
    return _default

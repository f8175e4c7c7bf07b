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

from .config import Config, PluginSection, format_validation_error
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
    _table: dict[str, dict[str, Entry]] = field(default_factory=dict, repr=False)  # the groups loaded so far

    def __post_init__(self) -> None:
        if self.entry_points is not None:
            self.entry_points = list(self.entry_points)  # read once per group

    # -- loading -------------------------------------------------------------------------
    def _declared(self, group: str) -> list[metadata.EntryPoint]:
        """The entry points of ``group`` that ``allow`` lets through, sorted by name (none imported)."""
        eps = self.entry_points
        if eps is None:
            eps = metadata.entry_points(group=group)
        return sorted((ep for ep in eps if ep.group == group and (
            self.allow is None or ep.name in self.allow or f"{ep.group}:{ep.name}" in self.allow)), key=lambda e: e.name)

    def _load(self, groups: Iterable[str] = GROUPS) -> dict[str, dict[str, Entry]]:
        """Import the entry points of ``groups`` not loaded yet (a group is loaded only when used: a component's
        module may load heavy libraries; the built-ins' registry entries load no torch)."""
        for group in groups:
            if group in self._table or group not in GROUPS:
                continue
            table: dict[str, Entry] = {}
            for ep in self._declared(group):
                table[ep.name] = self._entry(ep, table.get(ep.name))
            self._table[group] = table
        return self._table

    @staticmethod
    def _entry(ep: metadata.EntryPoint, prev: Entry | None) -> Entry:
        source = _source_of(ep)
        if prev is not None:
            return Entry(ep.group, ep.name, f"{prev.source}, {source}",
                         error=f"name registered twice (by {prev.source} and {source})")
        try:
            obj = ep.load()
        except Exception as e:  # a third-party import can fail in any way; record it
            return Entry(ep.group, ep.name, source, error=f"import failed: {e!r}")
        if not isinstance(obj, Spec):
            return Entry(ep.group, ep.name, source, error=f"{ep.value} is a {type(obj).__name__}, not a syncanim Spec")
        if obj.name != ep.name:
            return Entry(ep.group, ep.name, source,
                         error=f"entry point name {ep.name!r} does not match its spec name {obj.name!r}")
        return Entry(ep.group, ep.name, source, spec=obj)

    # -- queries -------------------------------------------------------------------------
    def entries(self, group: str | None = None) -> list[Entry]:
        """All entries, sorted by group then name (broken ones included)."""
        groups = [group] if group else list(GROUPS)
        table = self._load(groups)
        return [table[g][n] for g in groups if g in table for n in sorted(table[g])]

    def get(self, group: str, name: str) -> Spec:
        """The spec registered as ``name`` in ``group``; raises PluginError if unknown or broken."""
        if group not in GROUPS:
            raise PluginError(f"unknown component group {group!r}")
        table = self._load([group])
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


#: the settings that name a component: (section, key) of :class:`~syncanim.config.Config` -> its group
COMPONENT_SETTINGS: dict[tuple[str, str], str] = {
    ("prep", "decoder"): "syncanim.decoders",
    ("prep", "landmarks"): "syncanim.trackers",
    ("prep", "masks"): "syncanim.segmenters",
    ("prep", "background"): "syncanim.backgrounds",
    ("prep", "head_pose"): "syncanim.head_trackers",
    ("prep", "expressions"): "syncanim.expressions",
    ("prep", "audio"): "syncanim.asr",
    ("model", ""): "syncanim.renderers",
}


def resolve_components(config: Config, registry: Registry, sections: Iterable[str]) -> None:
    """Look up the components ``config`` names in ``sections`` (``prep``, ``model``) and validate their settings, as a
    run would before it starts (PluginError for an unknown one, ConfigError for a bad setting); nothing is built or
    checked for this machine."""
    wanted = set(sections)
    for (section, key), group in COMPONENT_SETTINGS.items():
        if section not in wanted:
            continue
        value = getattr(config, section)
        value = getattr(value, key) if key else value
        registry.resolve(group, value, where=f"{section}.{key}" if key else section)

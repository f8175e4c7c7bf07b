"""The entry-point registry (syncanim/registry.py): lookup, broken records, validation, allow-list.

Each test builds an isolated ``Registry`` over hand-made entry points that point into a small plugin
module written to ``tmp_path`` (the tests folder is not a package, so this file cannot be imported
by a dotted name).
"""

from __future__ import annotations

import itertools
import sys
import textwrap
import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from syncanim.config import PluginSection
from syncanim.errors import ConfigError, PluginError
from syncanim.registry import GROUPS, Registry, Spec, _allow_from_env

ASR = "syncanim.asr"
RENDERERS = "syncanim.renderers"

PLUGIN_SOURCE = '''
from pydantic import Field

from syncanim.config import Frozen
from syncanim.registry import Spec

BUILT = []


class AlphaConfig(Frozen):
    width: int = Field(8, gt=0)
    label: str = "alpha"


def build_alpha(config):
    BUILT.append(config)
    return ("alpha-component", config)


def needs_wide(config):
    return None if config.width >= 100 else "needs width >= 100 (set it in the config)"


SPEC_ALPHA = Spec("alpha", AlphaConfig, build_alpha, "test component alpha")
SPEC_BETA = Spec("beta", AlphaConfig, build_alpha, "test component beta")
SPEC_PICKY = Spec("picky", AlphaConfig, build_alpha, "only runs when wide", check=needs_wide)
NOT_A_SPEC = {"name": "alpha"}
'''

BROKEN_SOURCE = '''
raise ImportError("the heavy dependency is not installed")
'''

_counter = itertools.count()


@pytest.fixture
def plugin_mod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Write the plugin modules under fresh names (no clash in sys.modules) and put them on sys.path."""
    name = f"syncanim_test_plugins_{next(_counter)}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    (tmp_path / f"{name}_broken.py").write_text(textwrap.dedent(BROKEN_SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    for mod in (name, f"{name}_broken"):
        sys.modules.pop(mod, None)


def ep(name: str, value: str, group: str = ASR) -> EntryPoint:
    return EntryPoint(name, value, group)


def registry(*eps: EntryPoint, allow: set[str] | None = None) -> Registry:
    return Registry(entry_points=list(eps), allow=frozenset(allow) if allow is not None else None)


def entry(reg: Registry, group: str, name: str):
    matches = [e for e in reg.entries(group) if e.name == name]
    assert len(matches) == 1, f"expected one {group}:{name}, got {matches}"
    return matches[0]


# --- good entries --------------------------------------------------------------------------


def test_good_spec_resolves_and_builds(plugin_mod):
    reg = registry(ep("alpha", f"{plugin_mod}:SPEC_ALPHA"))
    spec = reg.get(ASR, "alpha")
    assert isinstance(spec, Spec)
    assert spec.name == "alpha" and spec.description == "test component alpha"
    assert not entry(reg, ASR, "alpha").broken

    built = reg.build(ASR, PluginSection(kind="alpha", width=32))
    assert built[0] == "alpha-component"
    assert built[1].width == 32 and built[1].label == "alpha"  # defaults fill what the section leaves out
    assert type(built[1]) is spec.config_model


def test_resolve_returns_spec_and_validated_config(plugin_mod):
    reg = registry(ep("alpha", f"{plugin_mod}:SPEC_ALPHA"))
    spec, cfg = reg.resolve(ASR, PluginSection(kind="alpha", label="x"))
    assert spec.name == "alpha"
    assert cfg.width == 8 and cfg.label == "x"


def test_entries_are_sorted_and_cover_every_group(plugin_mod):
    reg = registry(
        ep("beta", f"{plugin_mod}:SPEC_BETA"),
        ep("alpha", f"{plugin_mod}:SPEC_ALPHA"),
    )
    asr_names = [e.name for e in reg.entries(ASR)]
    assert asr_names == ["alpha", "beta"]
    groups = [e.group for e in reg.entries()]
    assert groups == sorted(groups, key=list(GROUPS).index)


def test_entry_points_outside_our_groups_are_ignored(plugin_mod):
    reg = registry(ep("alpha", f"{plugin_mod}:SPEC_ALPHA", group="someone.else"))
    assert all(e.name != "alpha" for e in reg.entries())
    with pytest.raises(PluginError, match="unknown component group"):
        reg.get("someone.else", "alpha")


# --- broken entries ------------------------------------------------------------------------


def test_import_failure_is_recorded_as_broken(plugin_mod):
    reg = registry(ep("heavy", f"{plugin_mod}_broken:SPEC"), ep("alpha", f"{plugin_mod}:SPEC_ALPHA"))
    e = entry(reg, ASR, "heavy")
    assert e.broken and e.spec is None
    assert "import failed" in e.error and "heavy dependency is not installed" in e.error
    with pytest.raises(PluginError, match="heavy dependency is not installed") as info:
        reg.get(ASR, "heavy")
    assert info.value.exit_code == 5
    # one broken entry does not take the others down
    assert reg.get(ASR, "alpha").name == "alpha"


def test_missing_attribute_is_recorded_as_broken(plugin_mod):
    reg = registry(ep("alpha", f"{plugin_mod}:NO_SUCH_SPEC"))
    assert entry(reg, ASR, "alpha").broken
    with pytest.raises(PluginError, match="unusable"):
        reg.get(ASR, "alpha")


def test_non_spec_object_is_recorded_as_broken(plugin_mod):
    reg = registry(ep("alpha", f"{plugin_mod}:NOT_A_SPEC"))
    e = entry(reg, ASR, "alpha")
    assert e.broken
    assert "not a syncanim Spec" in e.error and "dict" in e.error
    with pytest.raises(PluginError, match="not a syncanim Spec"):
        reg.get(ASR, "alpha")


def test_name_mismatch_is_recorded_as_broken(plugin_mod):
    reg = registry(ep("gamma", f"{plugin_mod}:SPEC_ALPHA"))
    e = entry(reg, ASR, "gamma")
    assert e.broken
    assert "'gamma'" in e.error and "'alpha'" in e.error
    with pytest.raises(PluginError, match="does not match its spec name"):
        reg.get(ASR, "gamma")
    # and the spec is not reachable under its own name either
    with pytest.raises(PluginError, match="no .* component named 'alpha'"):
        reg.get(ASR, "alpha")


def test_duplicate_name_is_broken_not_last_one_wins(plugin_mod):
    reg = registry(
        ep("alpha", f"{plugin_mod}:SPEC_ALPHA"),
        ep("alpha", f"{plugin_mod}:SPEC_ALPHA"),
    )
    e = entry(reg, ASR, "alpha")
    assert e.broken
    assert "registered twice" in e.error
    with pytest.raises(PluginError, match="registered twice"):
        reg.get(ASR, "alpha")


def test_same_name_in_different_groups_is_not_a_duplicate(plugin_mod):
    reg = registry(
        ep("alpha", f"{plugin_mod}:SPEC_ALPHA", group=ASR),
        ep("alpha", f"{plugin_mod}:SPEC_ALPHA", group="syncanim.metrics"),
    )
    assert reg.get(ASR, "alpha").name == "alpha"
    assert reg.get("syncanim.metrics", "alpha").name == "alpha"


def test_unknown_name_lists_the_usable_registered_ones(plugin_mod):
    reg = registry(
        ep("alpha", f"{plugin_mod}:SPEC_ALPHA"),
        ep("beta", f"{plugin_mod}:SPEC_BETA"),
        ep("heavy", f"{plugin_mod}_broken:SPEC"),
    )
    with pytest.raises(PluginError) as info:
        reg.get(ASR, "delta")
    msg = str(info.value)
    assert "'delta'" in msg
    assert "registered: alpha, beta" in msg  # broken ones are not offered
    assert "heavy" not in msg
    assert info.value.hint and "syncanim plugins" in info.value.hint


def test_unknown_name_in_an_empty_group_says_none():
    reg = registry()
    with pytest.raises(PluginError, match=r"registered: none"):
        reg.get("syncanim.metrics", "psnr")


# --- config validation ---------------------------------------------------------------------


def test_resolve_rejects_a_bad_option_naming_the_field(plugin_mod):
    reg = registry(ep("alpha", f"{plugin_mod}:SPEC_ALPHA"))
    with pytest.raises(ConfigError) as info:
        reg.resolve(ASR, PluginSection(kind="alpha", width=-3))
    msg = str(info.value)
    assert msg.startswith("alpha.width:")
    assert "greater than 0" in msg and "-3" in msg
    assert "\n" not in msg
    assert info.value.exit_code == 3


def test_resolve_names_the_config_section_when_told(plugin_mod):
    reg = registry(ep("alpha", f"{plugin_mod}:SPEC_ALPHA"))
    with pytest.raises(ConfigError, match=r"^prep\.audio\.width: "):
        reg.resolve(ASR, PluginSection(kind="alpha", width=0), where="prep.audio")


def test_resolve_rejects_an_unknown_option(plugin_mod):
    reg = registry(ep("alpha", f"{plugin_mod}:SPEC_ALPHA"))
    with pytest.raises(ConfigError, match=r"^alpha\.colour: unknown setting$"):
        reg.resolve(ASR, PluginSection(kind="alpha", colour="red"))


def test_build_does_not_run_for_an_invalid_config(plugin_mod):
    reg = registry(ep("alpha", f"{plugin_mod}:SPEC_ALPHA"))
    with pytest.raises(ConfigError):
        reg.build(ASR, PluginSection(kind="alpha", width="wide"))
    assert sys.modules[plugin_mod].BUILT == []


# --- availability checks -------------------------------------------------------------------


def test_check_message_makes_build_raise_and_nothing_is_built(plugin_mod):
    reg = registry(ep("picky", f"{plugin_mod}:SPEC_PICKY"))
    with pytest.raises(PluginError, match="cannot run here: needs width >= 100") as info:
        reg.build(ASR, PluginSection(kind="picky", width=10))
    assert info.value.exit_code == 5
    assert sys.modules[plugin_mod].BUILT == []


def test_check_passing_builds(plugin_mod):
    reg = registry(ep("picky", f"{plugin_mod}:SPEC_PICKY"))
    built = reg.build(ASR, PluginSection(kind="picky", width=128))
    assert built[1].width == 128


def test_check_can_be_skipped_explicitly(plugin_mod):
    reg = registry(ep("picky", f"{plugin_mod}:SPEC_PICKY"))
    built = reg.build(ASR, PluginSection(kind="picky", width=10), require_available=False)
    assert built[1].width == 10


# --- allow-list ----------------------------------------------------------------------------


@pytest.mark.parametrize("allowed", ["alpha", f"{ASR}:alpha"])
def test_allow_list_narrows_by_name_or_group_name(plugin_mod, allowed):
    reg = registry(
        ep("alpha", f"{plugin_mod}:SPEC_ALPHA"),
        ep("beta", f"{plugin_mod}:SPEC_BETA"),
        allow={allowed},
    )
    assert reg.get(ASR, "alpha").name == "alpha"
    assert [e.name for e in reg.entries(ASR)] == ["alpha"]
    with pytest.raises(PluginError, match="no .* component named 'beta'"):
        reg.get(ASR, "beta")


def test_allow_list_group_form_applies_to_that_group_only(plugin_mod):
    reg = registry(
        ep("alpha", f"{plugin_mod}:SPEC_ALPHA", group=ASR),
        ep("alpha", f"{plugin_mod}:SPEC_ALPHA", group="syncanim.metrics"),
        allow={f"{ASR}:alpha"},
    )
    assert reg.get(ASR, "alpha").name == "alpha"
    with pytest.raises(PluginError):
        reg.get("syncanim.metrics", "alpha")


def test_allow_list_never_adds(plugin_mod):
    reg = registry(ep("alpha", f"{plugin_mod}:SPEC_ALPHA"), allow={"alpha", "beta", f"{ASR}:gamma"})
    assert [e.name for e in reg.entries(ASR)] == ["alpha"]
    for name in ("beta", "gamma"):
        with pytest.raises(PluginError, match=f"no .* component named '{name}'"):
            reg.get(ASR, name)


def test_allow_list_skips_loading_what_it_excludes(plugin_mod):
    # the broken module is never imported when the allow-list leaves it out
    reg = registry(ep("heavy", f"{plugin_mod}_broken:SPEC"), ep("alpha", f"{plugin_mod}:SPEC_ALPHA"),
                   allow={"alpha"})
    assert [e.name for e in reg.entries(ASR)] == ["alpha"]
    assert f"{plugin_mod}_broken" not in sys.modules


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("", None), ("   ", None), ("alpha", {"alpha"}), (" alpha , syncanim.asr:beta ,", {"alpha", "syncanim.asr:beta"})],
)
def test_allow_list_from_environment(raw, expected):
    got = _allow_from_env({"SYNCANIM_PLUGINS": raw})
    assert got == (frozenset(expected) if expected is not None else None)
    assert _allow_from_env({}) is None


# --- the real, installed registry ----------------------------------------------------------


def _declared_builtins() -> set[tuple[str, str]]:
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    eps = tomllib.loads(pyproject.read_text())["project"]["entry-points"]
    return {(g, n) for g, table in eps.items() if g.startswith("syncanim.") for n in table}


def test_installed_builtins_are_all_usable():
    reg = Registry()  # installed entry points, no allow-list (not the process-wide cached one)
    ours = [e for e in reg.entries() if e.source.startswith("syncanim ")]
    assert ours, "no built-in components found: is syncanim installed (pip install -e .)?"
    broken = [f"{e.group}:{e.name}: {e.error}" for e in ours if e.broken]
    assert not broken
    for e in ours:
        assert e.spec is not None and e.spec.name == e.name
        assert e.spec.description


def test_every_builtin_declared_in_pyproject_is_registered():
    reg = Registry()
    found = {(e.group, e.name) for e in reg.entries() if not e.broken}
    missing = _declared_builtins() - found
    assert not missing, f"declared in pyproject.toml but not loaded (reinstall with pip install -e .?): {missing}"


def test_builtin_configs_have_valid_defaults():
    """Every built-in can be resolved from a section that names only its kind."""
    reg = Registry()
    for e in reg.entries():
        if e.source.startswith("syncanim ") and e.group in GROUPS:
            spec, cfg = reg.resolve(e.group, PluginSection(kind=e.name))
            assert isinstance(cfg, spec.config_model)

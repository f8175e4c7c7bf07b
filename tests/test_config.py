"""Config models, presets, ``--set`` overrides and TOML output (syncanim/config.py)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from syncanim.config import (
    CONFIG_VERSION,
    Config,
    PluginSection,
    PrepConfig,
    build_config,
    list_presets,
    load_preset,
    merge,
    parse_override,
    presets_dir,
    to_toml,
)
from syncanim.errors import ConfigError
from syncanim.registry import Registry

# PrepConfig field -> the entry-point group its ``kind`` is looked up in
PREP_GROUPS = {
    "decoder": "syncanim.decoders",
    "landmarks": "syncanim.trackers",
    "masks": "syncanim.segmenters",
    "background": "syncanim.backgrounds",
    "head_pose": "syncanim.head_trackers",
    "expressions": "syncanim.expressions",
    "audio": "syncanim.asr",
}


def leaf(d):
    """The single value at the bottom of a one-key-per-level dict."""
    while isinstance(d, dict):
        assert len(d) == 1
        d = next(iter(d.values()))
    return d


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


# --- defaults ------------------------------------------------------------------------------


def test_defaults():
    c = Config()
    assert c.version == CONFIG_VERSION
    assert c.runtime.device == "auto" and c.runtime.workers == 0 and c.runtime.seed == 0
    assert c.prep.fps == 25.0 and c.prep.size == 512 and c.prep.sample_rate == 16000
    assert c.prep.crop == "auto"
    assert c.prep.audio.kind == "whisper" and c.prep.audio.options() == {}
    assert c.prep.decoder.kind == "pyav"
    assert build_config() == c


def test_defaults_name_only_registered_components():
    reg = Registry()
    prep = PrepConfig()
    for field, group in PREP_GROUPS.items():
        reg.get(group, getattr(prep, field).kind)  # raises PluginError if unknown


def test_configs_are_frozen():
    c = build_config()
    with pytest.raises(ValidationError):
        c.prep.fps = 30.0
    with pytest.raises(ValidationError):
        c.runtime = c.runtime
    with pytest.raises(ValidationError):
        c.prep.audio.kind = "hubert"


def test_configs_forbid_unknown_fields_in_code_too():
    with pytest.raises(ValidationError):
        PrepConfig(fsp=30)


def test_plugin_section_keeps_its_options():
    s = PluginSection(kind="hubert", layer=-1, path="/models/h")
    assert s.kind == "hubert"
    assert s.options() == {"layer": -1, "path": "/models/h"}
    s.options()["layer"] = 3  # a copy: the frozen section is unchanged
    assert s.options()["layer"] == -1


# --- --set parsing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("prep.fps=30", {"prep": {"fps": 30}}),
        ("prep.fps=29.97", {"prep": {"fps": 29.97}}),
        ("prep.fps=1e2", {"prep": {"fps": 100.0}}),
        ("runtime.seed=-4", {"runtime": {"seed": -4}}),
        ("flag=true", {"flag": True}),
        ("flag=false", {"flag": False}),
        ("runtime.device=cpu", {"runtime": {"device": "cpu"}}),  # bare word: a string
        ("sample.text=hello world", {"sample": {"text": "hello world"}}),
        ('sample.text="true"', {"sample": {"text": "true"}}),  # quoted: a string, not a bool
        ('sample.text="30"', {"sample": {"text": "30"}}),
        ("sample.text='single'", {"sample": {"text": "single"}}),
        ("prep.audio.path=/models/hubert-large", {"prep": {"audio": {"path": "/models/hubert-large"}}}),
        ("sample.text=a=b", {"sample": {"text": "a=b"}}),  # only the first = splits
        (" prep.size = 256 ", {"prep": {"size": 256}}),
        ("x.y=[1, 2]", {"x": {"y": [1, 2]}}),
        ("sample.text=", {"sample": {"text": ""}}),
    ],
)
def test_parse_override_types(text, expected):
    got = parse_override(text)
    assert got == expected
    # == treats 1 == 1.0 == True; the leaf's type must match too
    assert type(leaf(got)) is type(leaf(expected))


def test_parse_override_nests_deeply():
    assert parse_override("a.b.c.d=1") == {"a": {"b": {"c": {"d": 1}}}}


@pytest.mark.parametrize("text", ["prep.fps", "", "=3", "prep..fps=3", ".fps=3", "prep.=3", " . =1"])
def test_parse_override_bad_syntax(text):
    with pytest.raises(ConfigError, match="--set") as info:
        parse_override(text)
    assert info.value.exit_code == 3


# --- merging and precedence ----------------------------------------------------------------


def test_merge_is_deep_and_does_not_mutate():
    base = {"prep": {"fps": 25, "size": 512}, "runtime": {"seed": 1}}
    over = {"prep": {"fps": 30}}
    out = merge(base, over)
    assert out == {"prep": {"fps": 30, "size": 512}, "runtime": {"seed": 1}}
    assert base == {"prep": {"fps": 25, "size": 512}, "runtime": {"seed": 1}}
    assert over == {"prep": {"fps": 30}}


def test_build_config_precedence(tmp_path):
    preset = write(tmp_path / "p.toml", "[prep]\nfps = 30.0\nsize = 256\njpeg_quality = 80\n")

    c = build_config(preset)
    assert (c.prep.fps, c.prep.size, c.prep.jpeg_quality, c.prep.chunk_frames) == (30.0, 256, 80, 250)

    c = build_config(preset, overrides=["prep.fps=20", "prep.size=128"])
    assert (c.prep.fps, c.prep.size, c.prep.jpeg_quality) == (20.0, 128, 80)

    c = build_config(preset, overrides=["prep.fps=20", "prep.size=128"], explicit={"prep": {"fps": 15.0}})
    assert (c.prep.fps, c.prep.size, c.prep.jpeg_quality) == (15.0, 128, 80)


def test_later_overrides_win():
    c = build_config(overrides=["prep.size=128", "prep.size=256"])
    assert c.prep.size == 256


def test_overrides_reach_plugin_options():
    c = build_config(overrides=["prep.audio.kind=hubert", "prep.audio.path=/m/hubert", "prep.audio.layer=-2"])
    assert c.prep.audio.kind == "hubert"
    assert c.prep.audio.options() == {"path": "/m/hubert", "layer": -2}


# --- presets -------------------------------------------------------------------------------


def test_preset_extends_chain(tmp_path):
    grand = write(tmp_path / "grand.toml", "[prep]\nfps = 30.0\nsize = 256\njpeg_quality = 70\n")
    parent = write(tmp_path / "parent.toml", f'extends = "{grand}"\n[prep]\nsize = 384\n')
    child = write(tmp_path / "child.toml", f'extends = "{parent}"\n[prep]\njpeg_quality = 90\n')

    data = load_preset(child)
    assert "extends" not in data
    assert data == {"prep": {"fps": 30.0, "size": 384, "jpeg_quality": 90}}
    c = build_config(child)
    assert (c.prep.fps, c.prep.size, c.prep.jpeg_quality) == (30.0, 384, 90)


def test_preset_can_extend_a_builtin(tmp_path):
    child = write(tmp_path / "mine.toml", 'extends = "base"\n[prep]\nsize = 256\n')
    c = build_config(child)
    assert c.prep.size == 256
    assert c.prep.masks.options() == build_config("base").prep.masks.options()


@pytest.mark.parametrize("length", [1, 2, 3])
def test_preset_cycle_is_detected(tmp_path, length):
    paths = [tmp_path / f"p{i}.toml" for i in range(length)]
    for i, p in enumerate(paths):
        write(p, f'extends = "{paths[(i + 1) % length]}"\n[prep]\nsize = {256 + i}\n')
    with pytest.raises(ConfigError, match="extends itself"):
        build_config(str(paths[0]))


def test_unknown_preset_names_the_builtins():
    with pytest.raises(ConfigError, match="unknown preset 'no-such-preset'") as info:
        build_config("no-such-preset")
    assert info.value.hint is not None
    for name in list_presets():
        assert name in info.value.hint


def test_a_folder_named_like_a_preset_does_not_hide_it(tmp_path, monkeypatch):
    """A model folder called ``base`` where the command runs: ``cpu-quick`` (which extends ``base``) still loads."""
    (tmp_path / "base").mkdir()
    (tmp_path / "cpu-quick").mkdir()
    monkeypatch.chdir(tmp_path)
    assert build_config("cpu-quick").train.head_steps == build_config(str(presets_dir() / "cpu-quick.toml")).train.head_steps
    write(tmp_path / "mine", "extends = \"cpu-quick\"\n[prep]\nfps = 30.0\n")  # a file without .toml, by its name
    assert build_config("mine").prep.fps == 30.0


def test_missing_preset_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        build_config(str(tmp_path / "nope.toml"))


def test_preset_that_is_not_toml(tmp_path):
    bad = write(tmp_path / "bad.toml", "[prep\nfps = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        build_config(bad)


def test_extends_must_be_a_name(tmp_path):
    bad = write(tmp_path / "bad.toml", "extends = 3\n")
    with pytest.raises(ConfigError, match="extends"):
        build_config(bad)


# --- plugin kind changes -------------------------------------------------------------------


def test_changed_kind_drops_the_old_kinds_options(tmp_path):
    preset = write(tmp_path / "h.toml", '[prep.audio]\nkind = "hubert"\nlayer = -1\npath = "/m/h"\n')
    assert build_config(preset).prep.audio.options() == {"layer": -1, "path": "/m/h"}

    c = build_config(preset, overrides=["prep.audio.kind=logmel"])
    assert c.prep.audio.kind == "logmel"
    assert c.prep.audio.options() == {}

    c = build_config(preset, overrides=["prep.audio.kind=logmel", "prep.audio.n_mels=64"])
    assert c.prep.audio.options() == {"n_mels": 64}


def test_changed_kind_through_extends_drops_parent_options(tmp_path):
    parent = write(tmp_path / "parent.toml", '[prep.audio]\nkind = "hubert"\nlayer = -1\n')
    child = write(tmp_path / "child.toml", f'extends = "{parent}"\n[prep.audio]\nkind = "wav2vec2"\n')
    c = build_config(child)
    assert c.prep.audio.kind == "wav2vec2" and c.prep.audio.options() == {}


def test_same_kind_keeps_the_options(tmp_path):
    preset = write(tmp_path / "h.toml", '[prep.audio]\nkind = "hubert"\nlayer = -1\n')
    c = build_config(preset, overrides=["prep.audio.kind=hubert", "prep.audio.path=/m"])
    assert c.prep.audio.options() == {"layer": -1, "path": "/m"}


# --- validation messages -------------------------------------------------------------------


def test_validation_error_is_one_line_naming_the_field():
    with pytest.raises(ConfigError) as info:
        build_config(overrides=["prep.fps=-1"])
    msg = str(info.value)
    assert msg.startswith("prep.fps: ")
    assert "greater than 0" in msg and "(got -1)" in msg
    assert "\n" not in msg
    assert info.value.exit_code == 3


def test_validation_error_for_a_wrong_type():
    with pytest.raises(ConfigError, match=r"^prep\.size: .*\(got 'big'\)") as info:
        build_config(overrides=["prep.size=big"])
    assert "\n" not in str(info.value)


def test_validation_error_names_every_bad_field_on_one_line():
    with pytest.raises(ConfigError) as info:
        build_config(overrides=["prep.fps=-1", "prep.size=big", "prep.nope=1"])
    msg = str(info.value)
    assert "\n" not in msg and "more)" not in msg
    assert [part.split(":")[0] for part in msg.split("; ")] == ["prep.fps", "prep.size", "prep.nope"]


def test_validation_error_counts_the_errors_it_leaves_out():
    bad = [f"{key}=-1" for key in ("prep.fps", "prep.size", "train.rays", "train.head_steps", "train.lips_steps")]
    with pytest.raises(ConfigError, match=r"^prep\.fps: .*; .*\(\+1 more\)$") as info:
        build_config(overrides=bad)
    assert str(info.value).count("; ") == 3


@pytest.mark.parametrize(("override", "field"), [("prep.nope=1", "prep.nope"), ("bogus=1", "bogus"),
                                                 ("runtime.gpu=true", "runtime.gpu")])
def test_unknown_key_says_unknown_setting(override, field):
    with pytest.raises(ConfigError) as info:
        build_config(overrides=[override])
    assert str(info.value) == f"{field}: unknown setting"


def test_unknown_key_in_a_preset(tmp_path):
    preset = write(tmp_path / "p.toml", "[prep]\nframes_per_second = 30\n")
    with pytest.raises(ConfigError, match=r"^prep\.frames_per_second: unknown setting$"):
        build_config(preset)


def test_bad_literal_names_the_field():
    with pytest.raises(ConfigError, match=r"^runtime\.device: "):
        build_config(overrides=["runtime.device=tpu"])


# --- TOML output ---------------------------------------------------------------------------


def roundtrip(c: Config) -> Config:
    return Config(**tomllib.loads(to_toml(c)))


def test_to_toml_roundtrips_defaults():
    c = Config()
    assert roundtrip(c) == c


def test_to_toml_roundtrips_non_defaults_and_plugin_options():
    c = build_config(
        overrides=[
            "prep.fps=29.97", "prep.size=256", "prep.crop=subject", "runtime.device=cpu", "runtime.seed=-3",
            "prep.audio.kind=hubert", "prep.audio.path=/models/h l", "prep.audio.layer=-2",
            "prep.masks.pose_every=5",
        ],
        explicit={"sample": {"text": 'She said "hi" \\ then\tleft, ünïcödé.'}},
    )
    text = to_toml(c)
    assert "[prep.audio]" in text
    back = roundtrip(c)
    assert back == c
    assert back.prep.audio.options() == {"path": "/models/h l", "layer": -2}
    assert back.prep.masks.options() == {"pose_every": 5}
    assert back.sample.text == 'She said "hi" \\ then\tleft, ünïcödé.'


def test_to_toml_roundtrips_multiline_text():
    c = build_config(explicit={"sample": {"text": "First line.\nSecond line."}})
    assert roundtrip(c) == c


# --- built-in presets ----------------------------------------------------------------------


def test_there_are_builtin_presets():
    assert "base" in list_presets()


@pytest.mark.parametrize("name", list_presets())
def test_every_builtin_preset_loads(name):
    c = build_config(name)
    assert isinstance(c, Config)
    assert roundtrip(c) == c


@pytest.mark.parametrize("name", list_presets())
def test_every_builtin_preset_names_registered_components_with_valid_options(name):
    reg = Registry()
    prep = build_config(name).prep
    for field, group in PREP_GROUPS.items():
        reg.resolve(group, getattr(prep, field))  # ConfigError / PluginError on a bad section


@pytest.mark.parametrize("name", list_presets())
def test_every_builtin_preset_starts_with_a_comment_giving_its_command(name):
    lines = (presets_dir() / f"{name}.toml").read_text().lstrip().splitlines()
    assert lines[0].startswith("#")
    header = lines[: next(i for i, ln in enumerate(lines) if not ln.startswith("#"))]
    assert any("syncanim " in ln for ln in header), header


def test_base_preset_is_exactly_the_defaults():
    from syncanim.config import Config, build_config

    assert build_config("base") == Config()


def test_the_cpu_demo_trains_within_a_budget_unless_told_otherwise():
    from syncanim.demo import DEMO_CPU_TRAIN_MINUTES, demo_config

    assert demo_config(gpu=False).train.max_minutes == DEMO_CPU_TRAIN_MINUTES
    assert demo_config(gpu=False, overrides=["train.max_minutes=3"]).train.max_minutes == 3
    assert demo_config(gpu=False).prep.size == 256

"""Training the head on CPU: it learns, it resumes exactly, it refuses bad folders."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from syncanim.config import PluginSection, RuntimeConfig, TrainConfig
from syncanim.errors import CheckpointError, ConfigError, DataError
from syncanim.model.folder import dataset_path
from syncanim.train.trainer import Schedule, StepTimer, run_train


def tiny_dataset_of(model):
    return dataset_path(model.layout.root, model.info)


@pytest.fixture(autouse=True)
def _settings(tiny_settings):
    global TINY_MODEL, TINY_TRAIN
    TINY_MODEL, TINY_TRAIN = tiny_settings


TINY_MODEL: dict = {}
TINY_TRAIN: dict = {}


def test_loss_falls_and_validation_psnr_rises(tiny_model):
    rows = [json.loads(x) for x in tiny_model.layout.metrics.read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r and r["stage"] == "head"]
    assert len(losses) >= 1
    val = [p for _, p in tiny_model.val_psnr]
    assert len(val) >= 2 and val[-1] > val[0] + 0.5, val
    assert tiny_model.step == tiny_model.total == 50
    for f in ("model.json", "model.safetensors", "assets/replay.npz", "assets/frames.mp4", "assets/backgrounds.mp4",
              "checkpoint/state.safetensors", "checkpoint/state.json", "config.resolved.toml"):
        assert (tiny_model.layout.root / f).is_file(), f


def test_the_model_keeps_a_mouth_backstop_coloured_like_the_inside_of_the_mouth(tiny_model, tiny_dataset):
    from syncanim.data.dataset import load_head_data
    from syncanim.model.backstop import backstop_ellipsoid
    from syncanim.model.folder import load_model
    from syncanim.model.head import EXPRESSIONS

    model, _ = load_model(tiny_model.layout.root)
    data = load_head_data(tiny_dataset.layout.root, EXPRESSIONS)
    assert model._backstop_on
    torch.testing.assert_close(model.mouth_backstop[:2], torch.from_numpy(backstop_ellipsoid(data.canonical)))
    colour = model.mouth_backstop[2]
    assert ((colour >= 0) & (colour <= 1)).all()


def _train(ds, out, progress=None, **over):
    cfg = TrainConfig(**{**TINY_TRAIN, "eval_every": 1000, **over})
    kw = {"progress": progress} if progress else {}
    return run_train(ds, out, PluginSection(**TINY_MODEL), cfg, RuntimeConfig(device="cpu"), **kw)


@pytest.fixture(scope="module")
def straight(tiny_dataset, tmp_path_factory, tiny_settings):
    """20 steps without a stop: what an interrupted and resumed run must give, bit for bit."""
    global TINY_MODEL, TINY_TRAIN
    TINY_MODEL, TINY_TRAIN = tiny_settings
    out = tmp_path_factory.mktemp("straight") / "a"
    return _train(tiny_dataset.layout.root, out, head_steps=16, lips_steps=4, checkpoint_every=100), out


def test_resume_after_interrupt_is_bit_for_bit(tiny_dataset, tmp_path, straight):
    ds = tiny_dataset.layout.root
    straight, straight_out = straight

    def stop_at_ten(stage, done, total, info=None):
        if stage == "train" and done >= 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _train(ds, tmp_path / "b", progress=stop_at_ten, head_steps=16, lips_steps=4, checkpoint_every=100)
    state = json.loads((tmp_path / "b" / "checkpoint" / "state.json").read_text())
    assert 0 < state["step"] < 20
    resumed = _train(ds, tmp_path / "b", head_steps=16, lips_steps=4, checkpoint_every=100)
    assert resumed.resumed_from == state["step"] and resumed.step == straight.step == 20
    a, b = load_file(str(straight_out / "model.safetensors")), load_file(str(tmp_path / "b" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_ctrl_c_in_the_middle_of_a_step_still_resumes_bit_for_bit(tiny_dataset, tmp_path, monkeypatch, straight,
                                                                  python_ctrl_c):
    """A real SIGINT, delivered after the step's batch was drawn and before its update: training finishes that
    step, saves, stops; the rerun gives the uninterrupted run's weights exactly."""
    import signal

    import syncanim.train.trainer as trainer

    ds = tiny_dataset.layout.root
    straight, straight_out = straight
    draw, calls = trainer.ray_batch, []

    def interrupted(*args, **kwargs):
        batch = draw(*args, **kwargs)  # the generator has moved on
        calls.append(1)
        if len(calls) == 7:
            signal.raise_signal(signal.SIGINT)
        return batch

    monkeypatch.setattr(trainer, "ray_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _train(ds, tmp_path / "b", head_steps=16, lips_steps=4, checkpoint_every=100)
    monkeypatch.setattr(trainer, "ray_batch", draw)
    assert json.loads((tmp_path / "b" / "checkpoint" / "state.json").read_text())["step"] == 7  # the step was finished
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C is itself again
    resumed = _train(ds, tmp_path / "b", head_steps=16, lips_steps=4, checkpoint_every=100)
    assert resumed.resumed_from == 7 and resumed.step == straight.step == 20
    a, b = load_file(str(straight_out / "model.safetensors")), load_file(str(tmp_path / "b" / "model.safetensors"))
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_a_finished_model_is_left_as_it_is(tiny_model, tmp_path):
    out = tmp_path / "m"
    shutil.copytree(tiny_model.layout.root, out)
    before = (out / "model.safetensors").read_bytes()
    again = _train(tiny_dataset_of(tiny_model), out, eval_every=20)
    assert again.step == again.resumed_from == 50
    assert (out / "model.safetensors").read_bytes() == before


def test_unfinished_dataset_is_refused(tiny_dataset, tmp_path):
    ds = tmp_path / "ds"
    shutil.copytree(tiny_dataset.layout.root, ds)
    (ds / "manifest.json").unlink()
    with pytest.raises(DataError, match="not a finished dataset"):
        _train(ds, tmp_path / "m")


def test_model_folder_of_another_version_is_refused(tiny_model, tmp_path):
    out = tmp_path / "m"
    shutil.copytree(tiny_model.layout.root, out)
    info = json.loads((out / "model.json").read_text())
    info["format"] = 99
    (out / "model.json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match="format 99"):
        _train(tiny_dataset_of(tiny_model), out)


def test_model_folder_of_another_model_is_refused(tiny_model, tmp_path):
    out = tmp_path / "m"
    shutil.copytree(tiny_model.layout.root, out)
    with pytest.raises(CheckpointError, match="another model"):
        run_train(tiny_dataset_of(tiny_model), out, PluginSection(**{**TINY_MODEL, "hidden": 16}), TrainConfig(**TINY_TRAIN),
                  RuntimeConfig(device="cpu"))


def test_a_render_only_setting_does_not_block_a_resume(tiny_model, tmp_path):
    """How a model renders (here its fused kernels and render samples) is not what it learned: the run goes on,
    and the folder keeps the new settings."""
    out = tmp_path / "m"
    shutil.copytree(tiny_model.layout.root, out)
    info = json.loads((out / "model.json").read_text())
    info["model"]["fused_field"] = False  # as models saved when it was a switch say
    (out / "model.json").write_text(json.dumps(info))
    again = run_train(tiny_dataset_of(tiny_model), out, PluginSection(**{**TINY_MODEL, "render_samples": 4}),
                      TrainConfig(**TINY_TRAIN), RuntimeConfig(device="cpu"))
    assert again.step == again.resumed_from == 50
    saved = json.loads((out / "model.json").read_text())["model"]
    assert saved["render_samples"] == 4 and saved["fused_field"] == "mlp"


def test_other_clips_train_the_mouth_predictor_and_a_bad_one_is_refused_first(tiny_dataset, tmp_path):
    ds = tiny_dataset.layout.root
    with pytest.raises(DataError, match="not found"):
        _train(ds, tmp_path / "refused", mouth={"other_clips": [str(tmp_path / "nope")]})
    assert not (tmp_path / "refused").exists()  # refused before anything was written
    mouth = {"steps": 20, "other_clips": [str(ds)]}
    result = _train(ds, tmp_path / "m", head_steps=2, lips_steps=0, mouth=mouth, torso={"steps": 0})
    fit = json.loads(result.layout.info.read_text())["mouth"]["fit"]
    assert fit["steps"] == 20 and len(fit["gain"]) >= 1 and fit["loss"] > 0
    # a resumed run has its predictor: a clip it no longer needs may have moved
    again = _train(ds, tmp_path / "m", head_steps=2, lips_steps=0, torso={"steps": 0},
                   mouth={**mouth, "other_clips": [str(tmp_path / "moved")]})
    assert again.resumed_from == again.step == result.step


def test_nothing_to_train_is_a_config_error(tiny_dataset, tmp_path):
    with pytest.raises(ConfigError):
        _train(tiny_dataset.layout.root, tmp_path / "m", head_steps=0, lips_steps=0)


def test_schedule_fits_a_time_budget():
    s = Schedule(1000, 200, 0.1)
    assert s.stage(999) == "head" and s.stage(1000) == "lips"
    assert s.lr_scale(0) == 1.0 and s.lr_scale(1200) == pytest.approx(0.1)
    fitted = s.fitted(steps=50, seconds=10.0, budget_s=100.0, done=20)  # 5 steps/s x 95 s -> 475 more steps
    assert fitted.total == 495 and fitted.head == 412 and fitted.lips == 83
    assert s.fitted(50, 1.0, 1e6) is s
    # timed again in the lip stage: the head stage stays as it was, the lips shrink to what is left
    lips = fitted.fitted(steps=100, seconds=50.0, budget_s=20.0, done=432)  # 2 steps/s x 19 s -> 38 more steps
    assert lips.head == 412 and lips.total == 470 and lips.stage(469) == "lips"
    assert fitted.fitted(100, 50.0, 0.0, done=432).total == 432  # no time left: stop where it is



def test_step_timer_gives_its_span_once(monkeypatch):
    clock = iter([10.0, 12.5])
    monkeypatch.setattr("syncanim.train.trainer.time.perf_counter", lambda: next(clock))
    timer = StepTimer(start=5, span=3)
    assert [timer.tick(step) for step in range(1, 10)] == [None] * 7 + [2.5, None]


def test_training_fits_its_time_budget(tiny_dataset, tmp_path, caplog, monkeypatch):
    """A budget below what the steps need: the steps are timed once the occupancy grid is in use (here reported as
    2 a second) and both stages shrink; the lip stage is timed again (reported as 0.1 a second) and shrinks alone;
    the run ends at its new total."""
    reported = iter([50.0, 1000.0])  # seconds of 100 steps, head stage then lip stage
    real_tick = StepTimer.tick
    monkeypatch.setattr(StepTimer, "tick", lambda self, step: None if real_tick(self, step) is None else next(reported))
    with caplog.at_level("INFO", logger="syncanim.train.trainer"):
        result = _train(tiny_dataset.layout.root, tmp_path / "m", head_steps=200, lips_steps=5000, occupancy_warmup=0,
                        max_minutes=2.0, checkpoint_every=10_000, mouth={"steps": 20})
    budgets = [r.message for r in caplog.records if r.message.startswith("time budget")]
    assert len(budgets) == 2 and "head +" in budgets[0] and "head" not in budgets[1], budgets
    head, lips = (int(w) for w in budgets[0].split() if w.isdigit())
    assert head == 120 and 120 <= lips < 5000  # 2 steps a second for what is left of 2 minutes
    assert result.step == result.total < 260  # then 0.1 a second: a few more lip steps after the second timing

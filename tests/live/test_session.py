"""``syncanim live`` in the process: a generated speech file as the microphone, viewers over the WebSocket,
the page in headless Chromium, the CLI."""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from syncanim.cli import app
from syncanim.config import LiveConfig, RuntimeConfig
from syncanim.live.pipeline import run_live_bench, start_live

CPU = RuntimeConfig(device="cpu")


def _speech(path, seconds=3.0, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.3 * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) * np.sin(2 * np.pi * 180 * t)).astype(np.float32),
             rate)
    return path


def test_viewers_get_frames_with_their_sound_and_come_back_after_reconnecting(tiny_model, tmp_path):
    s = start_live(tiny_model.layout.root, LiveConfig(port=0), CPU, audio=_speech(tmp_path / "s.wav"))
    try:
        r = run_live_bench(s, 6.0, viewers=2, throttle_ms=100, reconnect_s=2.5)
    finally:
        s.stop()
    e = r["engine_all"]
    assert e["frames"] >= 100 and e["drawn"] > 0 and e["latency_ms"]["p50"] > 0
    assert set(e["stages_ms"]) >= {"lookahead", "features", "render", "encode"}
    for v in r["viewers"]:
        assert v["images"] > 0 and v["connects"] >= 2  # reconnected, and frames came after it
    assert r["viewers"][1]["messages"] >= r["viewers"][0]["messages"]  # the throttled one gets no more
    assert not s.server.thread.is_alive() and not s.engine.thread.is_alive()  # stopped cleanly


def test_a_host_other_than_this_machine_needs_the_token(tiny_model):
    s = start_live(tiny_model.layout.root, LiveConfig(port=0, host="127.0.0.1", token="sesame"), CPU)
    try:
        base = s.url.split("?")[0]
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(base, timeout=5)
        assert e.value.code == 403
        assert b"<canvas" in urllib.request.urlopen(base + "?token=sesame", timeout=5).read()
        stats = json.loads(urllib.request.urlopen(base + "stats?token=sesame", timeout=5).read())
        assert "engine" in stats and stats["viewers"] == []
    finally:
        s.stop()
    from syncanim.live.pipeline import access_token

    assert access_token(LiveConfig(host="0.0.0.0")) and access_token(LiveConfig()) is None


def _chrome():
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (browser and driver):
        pytest.skip("needs chromium and chromedriver (apt install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required",
              "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(driver), options=opts)


def _wait(driver, cond, timeout=60.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        stats = driver.execute_script("return window.syncanimStats")
        if stats and cond(stats):
            return stats
        time.sleep(0.25)
    raise AssertionError(f"the page did not get there: {driver.execute_script('return window.syncanimStats')}")


def test_the_page_plays_pictures_and_sound_and_keeps_playing_after_a_reconnect(tiny_model, tmp_path):
    driver = _chrome()
    s = start_live(tiny_model.layout.root, LiveConfig(port=0), CPU, audio=_speech(tmp_path / "s.wav"), loop_audio=True)
    try:
        driver.get(s.url)
        driver.find_element("id", "sound").click()
        st = _wait(driver, lambda x: x["drawn"] >= 3 and x["sound"] and x["connects"] == 1)
        s.server.disconnect_all()
        st2 = _wait(driver, lambda x: x["connects"] >= 2 and x["drawn"] >= st["drawn"] + 3)
        assert st2["received"] > st["received"]
        driver.find_element("id", "mic").click()  # the page's microphone (a fake device): sent to the server
        _wait(driver, lambda x: True, 2)
        time.sleep(2)
        assert s.server.push is not None and (s.server.push.playing or len(s.server.push.buf) > 0)
        page = s.server.hub.snapshot()[0]["page"]
        assert page.get("type") == "stats" and page["av_offset_ms"]["p50"] is not None
        assert abs(page["av_offset_ms"]["p50"]) < 40  # pictures shown at their sound's time
    finally:
        driver.quit()
        s.stop()


def test_cli_bench_reports_json_and_refuses_bad_input(tiny_model, tmp_path):
    wav = _speech(tmp_path / "s.wav", seconds=2.0)
    root = str(tiny_model.layout.root)
    r = CliRunner().invoke(app, ["-q", "live", root, "--bench", "--audio", str(wav), "--seconds", "3", "--port", "0",
                                 "--device", "cpu", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout[r.stdout.index("{"):r.stdout.rindex("}") + 1])
    assert data["engine_all"]["frames"] > 0 and data["viewers"][0]["images"] > 0
    r = CliRunner().invoke(app, ["live", root, "--bench", "--device", "cpu"])
    assert r.exit_code == 3 and "--audio" in r.output
    r = CliRunner().invoke(app, ["live", root, "--audio", str(wav), "--mic"])
    assert r.exit_code == 3
    r = CliRunner().invoke(app, ["live", str(tmp_path / "nope")])
    assert r.exit_code != 0 and "Traceback" not in r.output


def test_ctrl_c_stops_cleanly(tiny_model):
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "COLUMNS": "200", "PYTHONFAULTHANDLER": "1"}
    # a shell without job control starts background jobs with SIGINT ignored, and a child inherits that (Python then
    # installs no Ctrl-C handler): give the child the default disposition, as a terminal would
    p = subprocess.Popen([sys.executable, "-m", "syncanim.cli", "live", str(tiny_model.layout.root), "--port", "0",
                          "--device", "cpu"], stderr=subprocess.PIPE, text=True, env=env,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 120:
        line = p.stderr.readline()
        lines.append(line)
        if "open http://" in line or not line:
            break
    assert any("open http://127.0.0.1:" in x for x in lines), lines
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    try:
        rest = p.communicate(timeout=60)[1]
    except subprocess.TimeoutExpired:  # show where it hangs: the fault handler prints every thread's stack on SIGABRT
        p.send_signal(signal.SIGABRT)
        raise AssertionError("live did not stop within 60 s of Ctrl-C:\n" + p.communicate(timeout=30)[1]) from None
    assert p.returncode == 0 and "stopped" in rest and "Traceback" not in rest

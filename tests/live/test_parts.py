"""The parts of ``syncanim live`` that need no model: messages, sources, arrival times, viewer queues."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
import soundfile as sf

from syncanim.live.engine import Arrivals
from syncanim.live.hub import Hub
from syncanim.live.protocol import pack, unpack
from syncanim.live.sources import Clock, FileSource, PushBuffer


def test_a_message_carries_index_time_sound_and_image():
    sound = np.sin(np.linspace(0, 20, 640)).astype(np.float32) * 0.5
    m = unpack(pack(7, 0.28, 123.5, 16000, sound, b"\xff\xd8jpeg"))
    assert (m.index, m.pts, m.sent, m.rate, m.jpeg) == (7, 0.28, 123.5, 16000, b"\xff\xd8jpeg")
    np.testing.assert_allclose(m.pcm / 32767, sound, atol=1 / 32767)
    assert unpack(pack(8, 0.32, 0.0, 16000, sound, None)).jpeg == b""  # a frame not drawn: sound only
    with pytest.raises(ValueError):
        unpack(b"XX" + pack(1, 0, 0, 16000, sound, None)[2:])
    with pytest.raises(ValueError):
        unpack(pack(1, 0, 0, 16000, sound, b"abc")[:-1])


def test_the_clock_keeps_real_time_and_hands_over_what_a_late_caller_missed():
    c = Clock(16000, 320)
    t0 = time.monotonic()
    assert c.wait()[0] == 1
    assert time.monotonic() - t0 >= 0.019
    time.sleep(0.1)
    n, _ = c.wait()
    assert 4 <= n <= 7  # the blocks that fell due while the caller was away


def test_a_file_plays_then_silence(tmp_path):
    sf.write(tmp_path / "a.wav", np.full(800, 0.25, np.float32), 16000)
    src = FileSource(tmp_path / "a.wav", 16000, 320)
    got = np.concatenate([src.read()[0] for _ in range(4)])
    assert got[:800].min() == pytest.approx(0.25, abs=1e-4) and not got[800:].any()


def test_pushed_audio_waits_for_a_cushion_and_is_bounded():
    p = PushBuffer(16000, cushion_s=0.01, max_s=0.1)
    p.feed(np.ones(100))
    assert p.take(320) is None  # less than the cushion: silence for now
    p.feed(np.ones(200))
    assert p.take(320)[:300].all()
    p.feed(np.ones(5000))
    assert p.dropped == 5000 - 1600 and len(p.buf) == 1600


def test_arrival_of_samples_inside_a_late_read():
    a = Arrivals(16000)
    a.add(320, 10.0)
    a.add(3200, 12.0)  # a read of many blocks: its samples arrived in real time before 12.0
    assert a.at(3200) == 12.0 and a.at(1600) == pytest.approx(12.0 - 1600 / 16000)


def test_a_slow_viewer_loses_its_oldest_frames_and_no_one_else_does():
    async def main():
        hub = Hub(asyncio.get_running_loop(), maxlen=3)
        slow, fast = hub.add("slow"), hub.add("fast")
        got = []
        for i in range(10):
            hub._offer(bytes([i]))
            got.append(await fast.next())
        return slow, fast, got

    slow, fast, got = asyncio.run(main())
    assert got == [bytes([i]) for i in range(10)] and fast.dropped == 0
    assert list(slow.q) == [bytes([7]), bytes([8]), bytes([9])] and slow.dropped == 7


def test_a_viewer_that_acknowledges_gets_only_a_window_of_frames_on_their_way():
    from syncanim.live.hub import Viewer

    async def main():
        v = Viewer(maxlen=3, name="v", window=2)
        v.ack(0)
        got = []
        for i in range(1, 4):
            v.offer(pack(i, i / 25, 0.0, 16000, np.zeros(640), b"x"))
        got += [unpack(await v.next()).index for _ in range(2)]  # frames 1 and 2: within the window
        waiting = asyncio.ensure_future(v.next())
        await asyncio.sleep(0.05)
        assert not waiting.done()  # two frames on their way: frame 3 waits for an acknowledgement
        for i in range(4, 9):  # meanwhile the queue keeps the newest three
            v.offer(pack(i, i / 25, 0.0, 16000, np.zeros(640), b"x"))
        v.ack(2)  # all it was sent: the next one goes, although frames 3-5 were dropped unsent
        got.append(unpack(await waiting).index)
        return got, v.dropped

    got, dropped = asyncio.run(main())
    assert got == [1, 2, 6] and dropped == 3  # 3, 4 and 5 fell out of the queue while the viewer lagged


def test_the_figures_keep_a_fixed_number_of_frames():
    from syncanim.live.engine import FrameRecord, LiveStats

    st = LiveStats(keep=10)
    for k in range(25):
        st.add(FrameRecord(k, k % 2 == 0, 100.0 + k / 25, float(k), {"render": 2.0 * k}))
    s = st.summary()
    assert s["frames"] == 10 and s["drawn"] == 5 and st.frames == 25  # the last ten frames, 15..24
    assert s["latency_ms"]["max"] == 24.0 and s["stages_ms"]["render"]["max"] == 48.0
    assert s["fps_out"] == pytest.approx(25.0)
    assert st.summary(since=100.0 + 20 / 25)["frames"] == 5


def test_mmap_threshold_is_set_on_glibc_and_left_alone_at_zero():
    import platform

    from syncanim.live.heap import fix_mmap_threshold

    assert fix_mmap_threshold(0) is False
    if platform.libc_ver()[0] == "glibc":
        assert fix_mmap_threshold(128) is True

"""Probing, streaming and writing video (syncanim/media/video.py) on small generated clips.

Every frame of a test clip is one flat colour that encodes its index, so a frame can be identified after
lossy H.264 coding. Neighbouring indices differ by one step in one channel, so x264 sees no scene cut and
``VideoWriter`` clips keep a single keyframe.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from syncanim.audio.waveform import Waveform, read_audio
from syncanim.errors import DataError, ResourceError
from syncanim.media.video import MediaInfo, VideoWriter, iter_frames, probe, sample_frames

W, H = 96, 64  # not square, so a transposed frame would show


def colour(i: int) -> np.ndarray:
    """``[H, W, 3] uint8`` frame for index ``i`` < 256: G counts sixteens, R runs up then down within them."""
    assert 0 <= i < 256
    hi, lo = divmod(i, 16)
    if hi % 2:
        lo = 15 - lo
    return np.broadcast_to(np.array([8 + 15 * lo, 8 + 15 * hi, 128], np.uint8), (H, W, 3)).copy()


def index_of(rgb: np.ndarray) -> int:
    lo, hi = (int(round((float(rgb[..., c].mean()) - 8) / 15)) for c in range(2))
    return 16 * hi + (15 - lo if hi % 2 else lo)


def keyframes(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for pkt in c.demux(video=0) if pkt.size and pkt.is_keyframe)


def write_clip(path: Path, n: int, fps: float, audio: Waveform | None = None) -> Path:
    """An H.264 mp4 through ``VideoWriter`` (x264's default keyframe interval: one keyframe here)."""
    with VideoWriter(path, fps, W, H, audio=audio) as w:
        for i in range(n):
            w.write(colour(i))
    return path


def write_gop_clip(path: Path, n: int, fps: int, gop: int) -> Path:
    """Like ``write_clip`` but with a keyframe every ``gop`` frames (VideoWriter does not expose it)."""
    with av.open(str(path), mode="w", format="mp4") as c:
        v = c.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        v.codec_context.gop_size = gop
        v.options = {"crf": "18", "preset": "veryfast", "sc_threshold": "0"}
        for i in range(n):
            for pkt in v.encode(av.VideoFrame.from_ndarray(colour(i), format="rgb24")):
                c.mux(pkt)
        for pkt in v.encode():
            c.mux(pkt)
    return path


def sine(seconds: float, rate: int, freq: float = 440.0) -> Waveform:
    t = np.arange(int(round(seconds * rate))) / rate
    return Waveform((0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    return {
        "25": write_clip(d / "c25.mp4", 40, 25),
        "30": write_clip(d / "c30.mp4", 30, 30),
        "gop": write_gop_clip(d / "gop.mp4", 100, 25, gop=10),
        "audio": write_clip(d / "audio.mp4", 25, 25, audio=sine(1.0, 16000)),
    }


def read_all(path: Path, fps: float, start: int = 0, stop: int | None = None) -> list[tuple[int, np.ndarray]]:
    return list(iter_frames(path, fps, start, stop))


# --- probe ---------------------------------------------------------------------------------


def test_probe_fields(clips):
    info = probe(clips["25"])
    assert isinstance(info, MediaInfo)
    assert (info.width, info.height) == (W, H)
    assert info.fps == pytest.approx(25.0)
    assert info.num_frames == 40
    assert info.duration_s == pytest.approx(40 / 25)
    assert info.codec == "h264"
    assert info.path == str(clips["25"])
    assert not info.has_audio and info.audio_rate is None and info.audio_channels is None


def test_probe_with_audio(clips):
    info = probe(clips["audio"])
    assert info.has_audio and info.audio_rate == 16000 and info.audio_channels == 1
    assert info.num_frames == 25 and info.fps == pytest.approx(25.0)


def test_frames_at():
    info = MediaInfo("x", W, H, fps=30.0, num_frames=90, duration_s=3.0, codec="h264", has_audio=False,
                     audio_rate=None, audio_channels=None)
    assert info.frames_at(30.0) == 90
    assert info.frames_at(25.0) == 75
    assert info.frames_at(60.0) == 180
    assert info.frames_at(0.001) == 1  # never zero


# --- iter_frames ---------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "n", "fps"), [("25", 40, 25), ("30", 30, 30), ("gop", 100, 25)])
def test_same_fps_returns_every_frame_in_order(clips, name, n, fps):
    frames = read_all(clips[name], fps)
    assert [k for k, _ in frames] == list(range(n))
    assert [index_of(f) for _, f in frames] == list(range(n))
    rgb = frames[0][1]
    assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8


def test_frames_are_close_to_what_was_written(clips):
    for k, rgb in read_all(clips["25"], 25):
        assert np.abs(rgb.astype(int) - colour(k).astype(int)).max() <= 6  # crf 18 + YUV 4:2:0 rounding


@pytest.mark.parametrize(("start", "stop"), [(0, 5), (3, 9), (20, None), (39, 40)])
def test_start_and_stop_slice_the_stream(clips, start, stop):
    got = read_all(clips["25"], 25, start, stop)
    expected = list(range(start, 40 if stop is None else stop))
    assert [k for k, _ in got] == expected
    assert [index_of(f) for _, f in got] == expected


def test_empty_range(clips):
    assert read_all(clips["25"], 25, 5, 5) == []
    assert read_all(clips["25"], 25, 7, 3) == []


@pytest.mark.parametrize("start", [1, 9, 10, 11, 37, 55, 80, 99])
def test_seeking_gives_the_same_frames_as_reading_from_the_start(clips, start):
    """The gop clip has a keyframe every 10 frames (0.4 s), so ``start`` > 25 really seeks."""
    full = read_all(clips["gop"], 25)
    part = read_all(clips["gop"], 25, start, None)
    assert [k for k, _ in part] == list(range(start, 100))
    for (k, a), (k2, b) in zip(part, full[start:], strict=True):
        assert k == k2
        np.testing.assert_array_equal(a, b, err_msg=f"frame {k}")


def test_seeking_with_stop(clips):
    part = read_all(clips["gop"], 25, 60, 70)
    assert [index_of(f) for _, f in part] == list(range(60, 70))


def test_30fps_read_at_25fps_takes_the_nearest_frames(clips):
    info = probe(clips["30"])
    frames = read_all(clips["30"], 25)
    assert len(frames) == info.frames_at(25) == 25
    assert [k for k, _ in frames] == list(range(25))
    # output frame k is at k / 25 s; source frame j at j / 30 s; k * 30 / 25 is never a tie
    assert [index_of(f) for _, f in frames] == [round(k * 30 / 25) for k in range(25)]


def test_25fps_read_at_30fps_repeats_the_nearest_frames(clips):
    info = probe(clips["25"])
    frames = read_all(clips["25"], 30)
    assert len(frames) == info.frames_at(30) == 48
    for k, f in frames:
        exact = k * 25 / 30  # the source position of output frame k; x.5 is a tie, either side will do
        nearest = {int(np.floor(exact)), int(np.ceil(exact))} if exact % 1 == 0.5 else {round(exact)}
        assert index_of(f) in nearest, f"frame {k}"


def test_resampled_read_with_start(clips):
    full = read_all(clips["30"], 25)
    part = read_all(clips["30"], 25, 10, 20)
    assert [index_of(f) for _, f in part] == [index_of(f) for _, f in full[10:20]]


def test_stop_a_frame_past_the_end_pads_with_the_last_frame(clips):
    frames = read_all(clips["25"], 25, 0, 41)
    assert len(frames) == 41 and index_of(frames[-1][1]) == 39


def test_stop_well_past_the_end_is_a_data_error(clips):
    with pytest.raises(DataError, match="ends at frame 40, expected 60") as info:
        read_all(clips["25"], 25, 0, 60)
    assert info.value.hint and "truncated" in info.value.hint


# --- damaged and foreign files -------------------------------------------------------------


def read_fully(path: Path) -> None:
    """What prep does: probe, then decode every frame the header promises."""
    info = probe(path)
    read_all(path, info.fps, 0, info.num_frames)


def top_level_atoms(data: bytes) -> dict[str, tuple[int, int]]:
    """MP4 top-level boxes: type -> (offset, size)."""
    out, pos = {}, 0
    while pos + 8 <= len(data):
        size, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8].decode("latin-1")
        if size == 1:
            size = int.from_bytes(data[pos + 8:pos + 16], "big")
        out[kind] = (pos, size)
        pos += size if size else len(data)
    return out


@pytest.mark.parametrize("where", ["mid-mdat", "end-of-mdat", "header-only"])
def test_truncated_file_is_a_data_error(clips, tmp_path, where):
    data = clips["25"].read_bytes()
    atoms = top_level_atoms(data)
    mdat, moov = atoms["mdat"], atoms["moov"]
    assert mdat[0] < moov[0]  # VideoWriter puts the index last, so a cut loses it
    keep = {"mid-mdat": mdat[0] + mdat[1] // 2, "end-of-mdat": moov[0] - 1, "header-only": mdat[0]}[where]
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[:keep])
    with pytest.raises(DataError):
        read_fully(cut)
    with pytest.raises(DataError):
        read_all(cut, 25, 0, 40)


def test_truncated_streamable_file_is_a_data_error(clips, tmp_path):
    """With the index at the front (faststart) the header survives the cut and decoding finds it."""
    src = tmp_path / "fast.mp4"
    with av.open(str(clips["gop"])) as i, av.open(str(src), "w", format="mp4",
                                                   options={"movflags": "faststart"}) as o:
        s = o.add_stream_from_template(i.streams.video[0])
        for pkt in i.demux(i.streams.video[0]):
            if pkt.dts is not None:
                pkt.stream = s
                o.mux(pkt)
    data = src.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    assert probe(cut).num_frames == 100  # the header still promises every frame
    with pytest.raises(DataError):
        read_fully(cut)


def test_truncated_anywhere_is_a_data_error_never_a_raw_exception(clips, tmp_path):
    data = clips["25"].read_bytes()
    cut = tmp_path / "cut.mp4"
    raw: dict[tuple[str, str], list[int]] = {}  # (function, exception) -> cut points
    for n in range(1, len(data), max(1, len(data) // 150)):
        cut.write_bytes(data[:n])
        for what, fn in (("probe", probe), ("iter_frames", lambda p: read_all(p, 25, 0, 40))):
            try:
                fn(cut)
            except DataError:
                pass
            except Exception as e:  # the point is to catch anything else
                raw.setdefault((what, f"{type(e).__name__}: {e}"), []).append(n)
    assert not raw, "; ".join(f"{w} -> {e} at {len(ns)} cut points from {ns[0]} of {len(data)} bytes"
                              for (w, e), ns in raw.items())


@pytest.mark.parametrize("kind", ["random", "json", "npy", "empty"])
def test_non_video_file_is_a_data_error(tmp_path, kind):
    p = tmp_path / f"thing.{kind}"
    if kind == "random":
        p.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    elif kind == "json":
        p.write_text(json.dumps({"frames": list(range(500))}))
    elif kind == "npy":
        np.save(p, np.zeros((64, 64)))
        p = p.with_suffix(".npy")
    else:
        p.write_bytes(b"")
    with pytest.raises(DataError) as info:
        probe(p)
    assert p.name in str(info.value)
    with pytest.raises(DataError):
        read_all(p, 25)
    with pytest.raises(DataError):
        sample_frames(p, 4)


def test_missing_file_and_folder_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        probe(tmp_path / "nope.mp4")
    with pytest.raises(DataError, match="not found"):
        read_all(tmp_path / "nope.mp4", 25)
    with pytest.raises(DataError, match="not a file"):
        probe(tmp_path)


def test_audio_only_file_has_no_video_stream(tmp_path):
    p = tmp_path / "speech.wav"
    sf.write(str(p), sine(0.5, 16000).samples, 16000)
    with pytest.raises(DataError, match="no video stream"):
        probe(p)


@pytest.mark.parametrize("reader", ["iter_frames", "sample_frames"])
def test_audio_only_file_is_a_data_error_when_streamed(tmp_path, reader):
    p = tmp_path / "speech.wav"
    sf.write(str(p), sine(0.5, 16000).samples, 16000)
    with pytest.raises(DataError):
        read_all(p, 25) if reader == "iter_frames" else sample_frames(p, 4)


def test_text_file_is_not_a_video(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("remember to record 3 minutes of talking\n" * 50)
    with pytest.raises(DataError):
        probe(p)


# --- sample_frames -------------------------------------------------------------------------


def test_sample_frames_spread_over_the_clip(clips):
    out = sample_frames(clips["gop"], 6)  # keyframes at 0, 10, ..., 90
    assert 2 <= len(out) <= 6
    times = [t for t, _ in out]
    assert times == sorted(times)
    assert times[0] == pytest.approx(0.0, abs=0.05)
    assert times[-1] >= 0.8 * 100 / 25  # reaches the last fifth of the 4 s clip
    for t, rgb in out:
        assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8
        assert index_of(rgb) == round(t * 25)  # the picture matches its timestamp


def test_sample_frames_returns_at_most_max_frames(clips):
    assert keyframes(clips["gop"]) == 10
    assert len(sample_frames(clips["gop"], 3)) == 3
    out = sample_frames(clips["gop"], 100)
    times = [t for t, _ in out]
    assert 10 <= len(out) <= 100
    assert len(set(times)) == len(times)  # no frame twice


def test_sample_frames_with_a_single_keyframe_still_returns_frames(clips):
    assert keyframes(clips["25"]) == 1
    out = sample_frames(clips["25"], 24)
    assert 1 <= len(out) <= 24
    times = [t for t, _ in out]
    assert times == sorted(times) and len(set(times)) == len(times)
    for t, rgb in out:
        assert index_of(rgb) == round(t * 25)


def test_sample_frames_spread_over_a_clip_with_one_keyframe(clips):
    assert keyframes(clips["25"]) == 1
    out = sample_frames(clips["25"], 8)  # 40 frames, 1.6 s, one keyframe
    assert len(out) >= 2
    assert out[-1][0] >= 0.5 * 40 / 25


# --- VideoWriter ---------------------------------------------------------------------------


def test_writer_writes_the_file_and_counts_frames(tmp_path):
    out = tmp_path / "sub" / "v.mp4"  # missing folders are created
    with VideoWriter(out, 25, W, H) as w:
        for i in range(5):
            w.write(colour(i))
        assert not out.exists()  # only a .part file until the end
    assert w.frames == 5
    assert out.is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == ["v.mp4"]
    assert probe(out).num_frames == 5


def test_writer_close_returns_the_path(tmp_path):
    w = VideoWriter(tmp_path / "v.mp4", 25, W, H)
    w.write(colour(0))
    assert w.close() == tmp_path / "v.mp4"
    assert (tmp_path / "v.mp4").is_file()


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("frames_before", [0, 3, 60])
def test_writer_leaves_no_file_when_the_block_raises(tmp_path, frames_before):
    out = tmp_path / "v.mp4"
    with pytest.raises(Boom), VideoWriter(out, 25, W, H) as w:
        for i in range(frames_before):
            w.write(colour(i))
        if frames_before == 60:  # enough for the encoder to emit packets: a partial file is on disk
            assert [p.name for p in tmp_path.iterdir()] != []
        raise Boom("render failed")
    assert list(tmp_path.iterdir()) == []


def test_writer_does_not_replace_an_existing_file_on_error(tmp_path):
    out = tmp_path / "v.mp4"
    write_clip(out, 5, 25)
    before = out.read_bytes()
    with pytest.raises(Boom), VideoWriter(out, 25, W, H) as w:
        w.write(colour(0))
        raise Boom
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_writer_refuses_a_place_it_cannot_write_before_any_frame(tmp_path):
    (tmp_path / "folder.mp4").mkdir()
    (tmp_path / "file").write_bytes(b"")
    for out in (tmp_path / "folder.mp4", tmp_path / "file" / "v.mp4"):  # a folder; a file where a folder must be
        with pytest.raises(ResourceError, match="cannot write"):
            VideoWriter(out, 25, W, H)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder.mp4"]
    assert list((tmp_path / "folder.mp4").iterdir()) == []


def test_writer_rejects_odd_sizes(tmp_path):
    with pytest.raises(ValueError, match="even"):
        VideoWriter(tmp_path / "v.mp4", 25, 63, 64)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", [np.zeros((H, W, 3), np.float32), np.zeros((H, W), np.uint8),
                                 np.zeros((H, W, 4), np.uint8)], ids=["float", "grey", "rgba"])
def test_writer_rejects_bad_frames(tmp_path, bad):
    with pytest.raises(ValueError, match="uint8"), VideoWriter(tmp_path / "v.mp4", 25, W, H) as w:
        w.write(bad)
    assert list(tmp_path.iterdir()) == []


def test_writer_keeps_a_fractional_rate(tmp_path):
    out = write_clip(tmp_path / "ntsc.mp4", 10, 30000 / 1001)
    assert probe(out).fps == pytest.approx(29.97, abs=1e-3)


def test_muxed_audio_lasts_as_long_as_the_waveform(clips):
    back = read_audio(clips["audio"], 16000)
    # AAC codes whole 1024-sample frames; the encoder's priming/padding adds at most ~2 frames (128 ms)
    assert back.duration_s == pytest.approx(1.0, abs=2 * 1024 / 16000)
    with av.open(str(clips["audio"])) as c:
        a = c.streams.audio[0]
        assert float(a.duration * a.time_base) == pytest.approx(1.0, abs=2 * 1024 / 16000)


def test_muxed_audio_is_the_waveform(clips):
    back = read_audio(clips["audio"], 16000).samples
    mid = back[4000:12000]  # away from the coded edges
    spec = np.abs(np.fft.rfft(mid * np.hanning(mid.size)))
    assert np.fft.rfftfreq(mid.size, 1 / 16000)[np.argmax(spec)] == pytest.approx(440, abs=4)
    assert np.sqrt(np.mean(mid**2)) == pytest.approx(0.4 / np.sqrt(2), rel=0.1)


def test_empty_waveform_writes_no_audio_track(tmp_path):
    out = write_clip(tmp_path / "v.mp4", 5, 25, audio=Waveform(np.zeros(0, np.float32), 16000))
    assert not probe(out).has_audio

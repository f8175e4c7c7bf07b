import shutil

import numpy as np
import pytest

from syncanim.audio.tts import speak
from syncanim.errors import ConfigError, DataError, ResourceError

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@needs_espeak
def test_speech_is_16k_mono_and_audible():
    wave = speak("Hello world, this is a test.")
    assert wave.sample_rate == 16000
    assert wave.samples.ndim == 1 and wave.samples.dtype == np.float32
    assert 0.8 < wave.duration_s < 5.0
    assert wave.rms() > 0.01


@needs_espeak
def test_speech_is_deterministic():
    a = speak("The same words twice.")
    b = speak("The same words twice.")
    np.testing.assert_array_equal(a.samples, b.samples)


@needs_espeak
def test_rate_and_sample_rate_are_passed_on():
    slow = speak("One two three four five six.", words_per_minute=100)
    fast = speak("One two three four five six.", words_per_minute=250)
    assert slow.duration_s > 1.5 * fast.duration_s
    assert speak("Hi.", sample_rate=8000).sample_rate == 8000


@needs_espeak
def test_text_that_looks_like_an_option_is_spoken():
    assert speak("-v --help").rms() > 0.01


@needs_espeak
def test_unknown_voice_is_a_config_error():
    with pytest.raises(ConfigError, match="voice"):
        speak("Hello", voice="zz-nope")


@pytest.mark.parametrize("text", ["", "   \n"])
def test_empty_text_is_a_data_error(text):
    with pytest.raises(DataError):
        speak(text)


def test_missing_espeak_is_a_resource_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no espeak-ng on PATH
    with pytest.raises(ResourceError, match="espeak-ng is not installed") as info:
        speak("Hello")
    assert "apt-get install espeak-ng" in info.value.hint
    assert info.value.exit_code == 8

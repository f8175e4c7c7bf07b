"""Speech synthesis with the espeak-ng command-line program (formant synthesis: small, offline, deterministic)."""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import ConfigError, DataError, ResourceError
from .waveform import Waveform, read_audio

log = logging.getLogger(__name__)

ESPEAK = "espeak-ng"


def espeak_path() -> str:
    """The espeak-ng executable found on ``PATH``; ResourceError when there is none."""
    exe = shutil.which(ESPEAK)
    if exe is None:
        raise ResourceError(
            "espeak-ng is not installed",
            hint="apt-get install espeak-ng (Debian/Ubuntu) or brew install espeak-ng",
        )
    return exe


def speak(text: str, voice: str = "en-us", sample_rate: int = 16000, words_per_minute: int = 150) -> Waveform:
    """Synthesise ``text`` with espeak-ng: ``samples: [T] float32`` at ``sample_rate`` Hz, mono.

    The same text, voice and rate give the same samples on every run. The text goes to espeak-ng on
    stdin (no shell), so it may contain any characters. Raises DataError for empty text, ConfigError
    for a voice espeak-ng does not know, ResourceError when espeak-ng is missing.
    """
    if not text or not text.strip():
        raise DataError("nothing to say: the text is empty")
    if not 80 <= words_per_minute <= 450:
        raise ConfigError(f"words_per_minute must be in [80, 450] (espeak-ng's range), got {words_per_minute}")
    exe = espeak_path()
    with tempfile.TemporaryDirectory(prefix="syncanim-tts-") as tmp:
        wav = Path(tmp) / "speech.wav"
        cmd = [exe, "-v", voice, "-s", str(int(words_per_minute)), "-w", str(wav), "--stdin"]
        try:
            done = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True, timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ResourceError(f"espeak-ng could not run: {e}") from e
        err = done.stderr.decode("utf-8", "replace").strip()
        if done.returncode != 0 or not wav.is_file() or wav.stat().st_size <= 44:
            if "voice" in err.lower():
                raise ConfigError(f"espeak-ng has no voice {voice!r}", hint="list the voices with `espeak-ng --voices`")
            raise DataError(f"espeak-ng failed (exit {done.returncode}): {err or 'no audio written'}")
        if err:
            log.debug("espeak-ng: %s", err)
        wave = read_audio(wav, sample_rate=sample_rate)
    log.debug("synthesised %.2f s of speech with voice %s at %d wpm", wave.duration_s, voice, words_per_minute)
    return wave

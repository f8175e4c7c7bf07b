"""Waveform IO, resampling, framing to video fps, and the audio feature backends."""

"""The streaming path that ``render`` and ``live`` share: speech arrives in blocks, frames come out in order.

:class:`~syncanim.stream.speech.SpeechStream` turns audio blocks into per-frame speech features (each frame
as soon as the audio its features need has arrived); :class:`~syncanim.stream.avatar.AvatarStream` turns
those into frames: mouth codes from a bounded window of features, head pose, brows and blinks from the
motion syncer run causally, the torso and the head rendered per call of a few frames. ``render`` runs it
over a whole file; ``live`` over a microphone in real time.
"""

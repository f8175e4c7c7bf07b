"""Head models: the interface every renderer implements, and the audio-conditioned NeRF head.

- :mod:`.base`: :class:`~.base.HeadModel` (condition, render rays, render frames, losses, a training step)
  and :class:`~.base.HeadSetup`, what a renderer's factory builds a model for.
- :mod:`.camera`, :mod:`.conditioning`, :mod:`.batch`: the types it takes: cameras of B frames, their
  inputs and conditioning, a training step's rays.
- :mod:`.frames`: the compact and dense pixel layouts of whole frames.
- :mod:`.head`: the ``nerf-head`` renderer (its settings and registry entry, without torch, in
  :mod:`.head_config`); :mod:`.field`, :mod:`.mouth_net`, :mod:`.rays`, :mod:`.shell`, :mod:`.occupancy`,
  :mod:`.losses`: its parts.
- :mod:`.folder`: model folders (info, weights, replay material), models built through the registry.
"""

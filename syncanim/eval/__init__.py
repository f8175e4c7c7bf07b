"""Pipeline for ``syncanim eval``: fidelity, lip sync, blinks and head motion of a talking head.

- :mod:`.pipeline`: :func:`~syncanim.eval.pipeline.run_eval` (model / pair / video modes) and ``EvalConfig``.
- :mod:`.sync`: the weight-free audio-visual sync score (mouth opening vs speech envelope).
- :mod:`.video_stats`: landmarks, blinks, head motion and sync of one clip.
- :mod:`.baselines`: retrieval and static baselines on a dataset's validation split.
- :mod:`.report`: the result types (``EvalResult``), JSON, table rows and the report folder.
- :mod:`.syncnet`: the optional SyncNet LSE-C / LSE-D metric (user-supplied weights).

Importing this package loads nothing heavy; each module imports what it needs.
"""

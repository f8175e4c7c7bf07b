"""Pipeline for ``syncanim train``: the head and lip stages, validation, resumable checkpoints."""

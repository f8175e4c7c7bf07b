"""The audio-conditioned NeRF head: rays, the depth-prior shell sampler, fields, audio encoder, losses."""

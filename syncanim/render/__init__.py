"""Pipeline for ``syncanim render``: new speech in, an mp4 of the person saying it out."""

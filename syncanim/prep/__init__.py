"""Pipeline for ``syncanim prep``: video -> frames, landmarks, masks, background, head pose,
expression coefficients and audio features in a dataset folder, with a manifest and a report."""

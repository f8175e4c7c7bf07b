"""Face analysis shared by prep, training, rendering and evaluation.

- :mod:`.landmarks`: MediaPipe FaceMesh tracking (478 landmarks per frame), gap filling, the face outline.
- :mod:`.headpose`: head pose and focal length by bundle adjustment of the subject's face shape.
- :mod:`.eyes`: eye landmarks and the eye aspect ratio (blinks).
- :mod:`.mouth`: mouth opening and the mouth code the head is conditioned on.

Prep registers the trackers as its components (:mod:`syncanim.prep.landmarks`, :mod:`syncanim.prep.headpose`).
"""

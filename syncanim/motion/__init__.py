"""[component] Motion from speech: head pose, brow raises and blinks (the pose and emotion syncers)."""

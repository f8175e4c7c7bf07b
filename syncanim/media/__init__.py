"""Reading and writing video containers (PyAV): probing, frame streams at a target rate, H.264 + AAC output."""

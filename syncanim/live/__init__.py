"""``syncanim live``: speech in from a microphone, a file played in real time or the viewer page's
microphone; the person answering, frames and sound together, on a local web page."""

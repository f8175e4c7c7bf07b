"""The built-in sample clip: a public-domain photo animated to speak espeak-ng speech (see ``generate``)."""

from .generate import SampleTruth, generate_sample

__all__ = ["SampleTruth", "generate_sample"]

"""Fusion Studio's core: encoders, the joint latent model, decoders, the pipeline and the ``Studio`` facade.

This package never imports gradio.
"""

from .studio import Encoding, Generation, Studio, load_studio

__all__ = ["Encoding", "Generation", "Studio", "load_studio"]

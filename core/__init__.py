"""Fusion Studio's core: encoders, the joint latent model, retrieval and the ``Studio`` facade.

This package never imports gradio.
"""

from .studio import Encoding, Studio, load_studio

__all__ = ["Encoding", "Studio", "load_studio"]

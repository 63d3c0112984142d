"""Frozen encoders from text, images and sounds to embeddings, behind one small interface.

- ``text.SentenceTextEncoder``: all-MiniLM-L6-v2 (packaged) or any sentence-transformer;
- ``image.EfficientNetImageEncoder``: EfficientNet-Lite0 ImageNet features (packaged);
- ``audio.SoundEncoder``: log-mel CNN trained by the project;
- ``hub``: open_clip (text, image) and CLAP (text, sound) adapters.
"""

from .base import MODALITIES, Encoder, PretrainedReference

__all__ = ["MODALITIES", "Encoder", "PretrainedReference"]

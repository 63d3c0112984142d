"""The joint latent space: fusion rules, the multimodal VAE and its training objectives."""

from .experts import (
    expert_shares,
    mixture_of_experts,
    mixture_of_products_of_experts,
    product_of_experts,
    subset_masks,
)
from .joint import FusedPosterior, JointLatentModel
from .objectives import JointObjective, joint_loss

__all__ = [
    "FusedPosterior",
    "JointLatentModel",
    "JointObjective",
    "expert_shares",
    "joint_loss",
    "mixture_of_experts",
    "mixture_of_products_of_experts",
    "product_of_experts",
    "subset_masks",
]

"""Evaluation: the proposed joint model against the baselines, on held-out data (``studio-eval``).

metrics (recall@k, linear probe, Fréchet distance) · methods (one interface for everything
compared) · early_fusion, label_bridge, baselines · classification, retrieval, robustness,
generation (with the coherence judge) · floors · report · cli.
"""

from .baselines import BASELINES, Budget, build_baseline, train_baseline, train_baselines
from .cli import EvalOptions, evaluate
from .coherence import Judge, sound_features
from .early_fusion import EarlyFusionVAE, early_fusion_loss, train_early_fusion
from .floors import Floor, check_floors
from .label_bridge import LabelBridge
from .methods import LabelBridgeMethod, LatentModelMethod, Method
from .metrics import (
    LinearProbe,
    frechet_distance,
    frechet_distance_from_statistics,
    probe_accuracy,
    recall_at_k,
)
from .report import write_report
from .table import Table

__all__ = [
    "BASELINES",
    "Budget",
    "EarlyFusionVAE",
    "EvalOptions",
    "Floor",
    "Judge",
    "LabelBridge",
    "LabelBridgeMethod",
    "LatentModelMethod",
    "LinearProbe",
    "Method",
    "Table",
    "build_baseline",
    "check_floors",
    "early_fusion_loss",
    "evaluate",
    "frechet_distance",
    "frechet_distance_from_statistics",
    "probe_accuracy",
    "recall_at_k",
    "sound_features",
    "train_baseline",
    "train_baselines",
    "train_early_fusion",
    "write_report",
]

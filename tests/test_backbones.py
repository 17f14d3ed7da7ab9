"""ResNet-18 trunk, frame encoder and the two-stream audio-visual model."""

import pytest
import torch

from dagr import DAGR
from dagr.backbones import AudioVisualNet, FrameEncoder, ResNet18, crema_d_shapes, random_crema_d_batch


def test_resnet18_full_width_has_standard_size():
    net = ResNet18(in_channels=3, width=64)
    parameters = sum(p.numel() for p in net.parameters())
    # torchvision's resnet18 has 11,689,512 parameters, of which 513,000 are its fc layer.
    assert parameters == 11_689_512 - 513_000
    assert net.out_dim == 512


def test_resnet18_output_shape():
    net = ResNet18(in_channels=1, width=4)
    assert net(torch.randn(2, 1, 33, 20)).shape == (2, 32)


def test_resnet18_rejects_wrong_channels():
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 1, H, W\), got \(2, 3, 16, 16\)"):
        ResNet18(in_channels=1, width=4)(torch.randn(2, 3, 16, 16))


@pytest.mark.parametrize("name, value", [("in_channels", 0), ("width", -1), ("width", 2.5)])
def test_resnet18_rejects_bad_sizes(name, value):
    with pytest.raises(ValueError, match=f"{name} must be a positive int"):
        ResNet18(**{name: value})


def test_frame_encoder_averages_over_time():
    torch.manual_seed(0)
    encoder = FrameEncoder(width=4).eval()
    clip = torch.randn(2, 3, 3, 16, 16)
    per_frame = torch.stack([encoder.trunk(clip[:, index]) for index in range(3)], dim=1)
    assert torch.allclose(encoder(clip), per_frame.mean(dim=1), atol=1e-6)


def test_frame_encoder_rejects_4d_input():
    with pytest.raises(ValueError, match=r"video input must have shape \(B, T, C, H, W\)"):
        FrameEncoder(width=4)(torch.randn(2, 3, 16, 16))


def test_crema_d_shapes_full_size():
    assert crema_d_shapes() == {"audio": (1, 257, 188), "video": (3, 3, 224, 224)}


def test_crema_d_shapes_scaled():
    assert crema_d_shapes(0.25, frames=2) == {"audio": (1, 64, 47), "video": (2, 3, 56, 56)}


@pytest.mark.parametrize("scale", [0, 1.5, True, "half"])
def test_crema_d_shapes_rejects_bad_scale(scale):
    with pytest.raises(ValueError, match="scale must be a number in \\(0, 1\\]"):
        crema_d_shapes(scale)


def test_audio_visual_net_outputs():
    net = AudioVisualNet(num_classes=6, width=4)
    inputs, labels = random_crema_d_batch(3, scale=0.1, frames=2, generator=torch.Generator().manual_seed(0))
    logits, zs = net(inputs)
    assert logits.shape == (3, 6)
    assert set(zs) == {"audio", "video"}
    assert zs["audio"].shape == (3, 32)
    assert zs["video"].shape == (3, 32)
    assert labels.shape == (3,)


def test_audio_visual_net_rejects_missing_modality():
    net = AudioVisualNet(width=4)
    inputs, _ = random_crema_d_batch(2, scale=0.1, frames=1)
    with pytest.raises(ValueError, match=r"input lacks modalities \['video'\]"):
        net({"audio": inputs["audio"]})


def test_audio_visual_net_rejects_batch_mismatch():
    net = AudioVisualNet(width=4)
    inputs, _ = random_crema_d_batch(2, scale=0.1, frames=1)
    inputs["video"] = inputs["video"][:1]
    with pytest.raises(ValueError, match="audio and video batch sizes differ: 2 and 1"):
        net(inputs)


def test_audio_visual_net_trains_with_params_pareto():
    torch.manual_seed(0)
    net = AudioVisualNet(width=4)
    inputs, labels = random_crema_d_batch(4, scale=0.1, frames=2, generator=torch.Generator().manual_seed(1))
    regularizer = DAGR(beta=0.1, pareto="params")
    logits, zs = net(inputs)
    out = regularizer(zs, params=[net.encoders["audio"], net.encoders["video"]])
    (torch.nn.functional.cross_entropy(logits, labels) + out.loss).backward()
    assert all(0.0 <= float(value) <= 1.0 for value in out.alpha.values())
    assert all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in net.parameters())

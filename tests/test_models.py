import pytest
import torch

from dagr.models import (
    ConcatFusion,
    MLPEncoder,
    MultiViewNet,
    PixelCNN,
    SumFusion,
    build_mfeat_encoder,
    build_mfeat_model,
)


def _inputs(batch=5):
    torch.manual_seed(0)
    return {"fourier": torch.randn(batch, 76), "pixels": torch.randn(batch, 240)}


def test_mlp_encoder_shape():
    enc = MLPEncoder(10, dim=8, hidden=16)
    assert enc(torch.randn(4, 10)).shape == (4, 8)


def test_mlp_encoder_rejects_wrong_width():
    with pytest.raises(ValueError, match=r"\(B, 10\), got \(4, 9\)"):
        MLPEncoder(10)(torch.randn(4, 9))
    with pytest.raises(ValueError, match="in_dim must be a positive int, got 0"):
        MLPEncoder(0)


def test_pixel_cnn_accepts_flat_and_image():
    torch.manual_seed(0)
    cnn = PixelCNN(dim=12)
    flat = torch.randn(3, 240)
    out_flat = cnn(flat)
    out_image = cnn(flat.reshape(3, 1, 16, 15))
    assert out_flat.shape == (3, 12)
    assert torch.equal(out_flat, out_image)


def test_pixel_cnn_rejects_wrong_shape():
    with pytest.raises(ValueError, match="PixelCNN expects"):
        PixelCNN()(torch.randn(3, 239))


def test_forward_returns_logits_and_embeddings():
    net = build_mfeat_model(["fourier", "pixels"], dim=16)
    logits, zs = net(_inputs())
    assert logits.shape == (5, 10)
    assert list(zs) == ["fourier", "pixels"]
    assert all(z.shape == (5, 16) for z in zs.values())


def test_embeddings_are_not_normalized():
    net = build_mfeat_model(["fourier"], dim=16)
    _, zs = net({"fourier": 10 * torch.randn(6, 76)})
    norms = zs["fourier"].norm(dim=1)
    assert not torch.allclose(norms, torch.ones_like(norms))


def test_unimodal_logits_zero_other_views():
    net = build_mfeat_model(["fourier", "pixels"], dim=16)
    _, zs = net(_inputs())
    expected = net.head({"fourier": zs["fourier"], "pixels": torch.zeros_like(zs["pixels"])})
    assert torch.equal(net.unimodal_logits("fourier", zs), expected)
    assert torch.equal(net.unimodal_logits("fourier", zs["fourier"]), expected)


def test_unimodal_logits_use_view_block_of_head():
    net = build_mfeat_model(["fourier", "pixels"], dim=16)
    _, zs = net(_inputs())
    weight, bias = net.head.linear.weight, net.head.linear.bias
    expected = zs["pixels"] @ weight[:, 16:].T + bias
    assert torch.allclose(net.unimodal_logits("pixels", zs), expected, atol=1e-6)


def test_unimodal_logits_reject_unknown_view():
    net = build_mfeat_model(["fourier", "pixels"], dim=16)
    _, zs = net(_inputs())
    with pytest.raises(ValueError, match="unknown view 'zernike'"):
        net.unimodal_logits("zernike", zs)
    with pytest.raises(ValueError, match="lack view 'pixels'"):
        net.unimodal_logits("pixels", {"fourier": zs["fourier"]})


def test_forward_rejects_missing_and_extra_views():
    net = build_mfeat_model(["fourier", "pixels"], dim=16)
    x = _inputs()
    with pytest.raises(ValueError, match=r"lacks view\(s\) \['pixels'\]"):
        net({"fourier": x["fourier"]})
    with pytest.raises(ValueError, match=r"no encoder for"):
        net({**x, "zernike": torch.randn(5, 47)})


def test_detached_head_gets_no_gradient():
    net = build_mfeat_model(["fourier", "pixels"], dim=16)
    _, zs = net(_inputs())
    net.unimodal_logits("fourier", zs, detach_head=True).sum().backward()
    assert net.head.linear.weight.grad is None
    assert net.encoders["fourier"].net[0].weight.grad.abs().sum() > 0
    assert net.encoders["pixels"].proj.weight.grad is None


def test_sum_fusion_adds_view_heads():
    net = build_mfeat_model(["fourier", "pixels"], dim=16, fusion="sum")
    assert isinstance(net.head, SumFusion)
    logits, zs = net(_inputs())
    expected = net.head.heads["fourier"](zs["fourier"]) + net.head.heads["pixels"](zs["pixels"])
    assert torch.allclose(logits, expected, atol=1e-6)


def test_concat_fusion_width():
    head = ConcatFusion(["a", "b", "c"], dim=4, num_classes=3)
    assert head.linear.in_features == 12


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="fusion must be one of.*'film'"):
        build_mfeat_model(["fourier"], fusion="film")
    with pytest.raises(TypeError, match="encoders must be a non-empty dict"):
        MultiViewNet({}, num_classes=10, dim=8)
    with pytest.raises(ValueError, match="unknown mfeat view 'audio'"):
        build_mfeat_model(["audio"])
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        build_mfeat_model(["fourier"], num_classes=0)


def test_encoder_output_width_checked():
    net = MultiViewNet({"a": torch.nn.Linear(3, 5)}, num_classes=2, dim=4)
    with pytest.raises(ValueError, match="encoder of view 'a' returned shape \\(2, 5\\)"):
        net({"a": torch.randn(2, 3)})


def test_default_encoders_per_view():
    assert isinstance(build_mfeat_encoder("pixels"), PixelCNN)
    assert isinstance(build_mfeat_encoder("zernike"), MLPEncoder)
    assert build_mfeat_encoder("zernike").in_dim == 47

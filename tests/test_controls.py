import pytest
import torch

from dagr.controls import (
    CONTROLS,
    AlwaysOnAlignment,
    BarlowTwinsStyle,
    UnitSphere,
    UnitSphereOnly,
    VICRegStyle,
    barlow_twins_loss,
    build_control,
    normalize_encoders,
    vicreg_terms,
)
from dagr.models import build_mfeat_model
from dagr.regularizer import DAGROutput, anchoring_loss


def _zs(seed=0, batch=16, dim=8):
    g = torch.Generator().manual_seed(seed)
    return {"a": torch.randn(batch, dim, generator=g), "b": torch.randn(batch, dim, generator=g)}


@pytest.mark.parametrize("name", CONTROLS)
def test_control_returns_dagr_output(name):
    zs = {key: z.requires_grad_(True) for key, z in _zs().items()}
    out = build_control({"name": name})(zs)
    assert isinstance(out, DAGROutput)
    assert out.loss.dim() == 0
    assert set(out.dispersion) == {"a", "b"}
    assert out.alpha == {"a": None, "b": None}
    assert torch.isfinite(out.loss)


@pytest.mark.parametrize("name", ["alignment", "vicreg", "barlow"])
def test_control_loss_reaches_embeddings(name):
    zs = {key: z.requires_grad_(True) for key, z in _zs().items()}
    build_control({"name": name})(zs).loss.backward()
    assert zs["a"].grad is not None
    assert float(zs["a"].grad.abs().sum()) > 0


def test_alignment_equals_anchoring_at_tau_zero():
    zs = _zs()
    out = AlwaysOnAlignment(weight=1.0)(zs)
    assert torch.allclose(out.loss, anchoring_loss(zs, tau=0.0), atol=1e-6)


def test_alignment_zero_for_identical_views():
    z = _zs()["a"]
    assert float(AlwaysOnAlignment(weight=1.0)({"a": z, "b": z.clone()}).loss) == pytest.approx(0.0, abs=1e-7)


def test_alignment_weight_scales_loss():
    zs = _zs()
    assert torch.allclose(AlwaysOnAlignment(weight=0.5)(zs).loss, 0.5 * AlwaysOnAlignment(weight=1.0)(zs).loss)


def test_vicreg_terms_by_hand():
    z = torch.randn(32, 4, generator=torch.Generator().manual_seed(1))
    terms = vicreg_terms(z, z)
    assert float(terms["invariance"]) == 0.0
    centered = z - z.mean(0)
    cov = centered.T @ centered / 31
    expected_cov = (cov.pow(2).sum() - cov.diagonal().pow(2).sum()) / 4
    assert torch.allclose(terms["covariance"], expected_cov, atol=1e-5)
    expected_var = torch.relu(1 - torch.sqrt(z.var(0) + 1e-4)).mean()
    assert torch.allclose(terms["variance"], expected_var, atol=1e-6)


def test_vicreg_weighted_sum():
    zs = _zs()
    terms = vicreg_terms(zs["a"], zs["b"])
    expected = 0.01 * (25 * terms["invariance"] + 25 * terms["variance"] + terms["covariance"])
    assert torch.allclose(VICRegStyle()(zs).loss, expected, atol=1e-6)


def test_barlow_identity_correlation_is_small():
    z = torch.randn(512, 4, generator=torch.Generator().manual_seed(2))
    same = float(barlow_twins_loss(z, z))
    other = float(barlow_twins_loss(z, torch.randn(512, 4, generator=torch.Generator().manual_seed(3))))
    assert same < 0.05
    assert other > 3.0


def test_barlow_class_averages_pairs():
    zs = {**_zs(), "c": _zs(seed=5)["a"]}
    expected = 0.01 * (barlow_twins_loss(zs["a"], zs["b"]) + barlow_twins_loss(zs["a"], zs["c"])
                       + barlow_twins_loss(zs["b"], zs["c"])) / 3
    assert torch.allclose(BarlowTwinsStyle()(zs).loss, expected, atol=1e-6)


def test_sphere_control_has_zero_loss():
    out = UnitSphereOnly()(_zs())
    assert float(out.loss) == 0.0
    assert UnitSphereOnly.normalizes_embeddings


def test_normalize_encoders_gives_unit_rows():
    model = build_mfeat_model(["fourier", "zernike"], dim=8, hidden=16)
    normalize_encoders(model)
    normalize_encoders(model)  # a second call does not wrap twice
    assert isinstance(model.encoders["fourier"], UnitSphere)
    assert not isinstance(model.encoders["fourier"].encoder, UnitSphere)
    _, zs = model({"fourier": torch.randn(5, 76), "zernike": torch.randn(5, 47)})
    assert torch.allclose(zs["zernike"].norm(dim=1), torch.ones(5), atol=1e-5)


def test_normalize_encoders_rejects_plain_module():
    with pytest.raises(TypeError, match="encoders"):
        normalize_encoders(torch.nn.Linear(2, 2))


def test_build_control_rejects_unknown_name():
    with pytest.raises(ValueError, match="'simclr'"):
        build_control({"name": "simclr"})


def test_build_control_rejects_non_dict():
    with pytest.raises(TypeError, match="'vicreg'"):
        build_control("vicreg")


def test_build_control_rejects_bad_option():
    with pytest.raises(TypeError, match="barlow"):
        build_control({"name": "barlow", "temperature": 0.1})


def test_control_rejects_negative_weight():
    with pytest.raises(ValueError, match="weight"):
        AlwaysOnAlignment(weight=-1.0)


def test_control_rejects_single_view():
    with pytest.raises(ValueError, match="at least 2 modalities"):
        VICRegStyle()({"a": torch.randn(4, 3)})


def test_control_names_modality_with_nan():
    zs = _zs()
    zs["b"][0, 0] = float("nan")
    with pytest.raises(ValueError, match="'b'"):
        BarlowTwinsStyle()(zs)


def _train_config(**overrides):
    from dagr.train import TrainConfig

    values = dict(views=("fourier", "zernike"), epochs=1, batch_size=32, dim=8, hidden=16, seed=0)
    values.update(overrides)
    return TrainConfig(**values)


def test_config_without_control_keeps_hash_fields():
    assert "control" not in _train_config().to_dict()
    assert _train_config(control={"name": "vicreg"}).to_dict()["control"] == {"name": "vicreg"}


def test_config_rejects_control_and_regularizer():
    with pytest.raises(ValueError, match="not both"):
        _train_config(control={"name": "sphere"}, regularizer={"lambda_d": 0.1})


def test_config_rejects_unknown_control():
    with pytest.raises(ValueError, match="'nce'"):
        _train_config(control={"name": "nce"})


def test_config_rejects_control_with_one_view():
    with pytest.raises(ValueError, match="at least 2 views"):
        _train_config(views=("fourier",), control={"name": "alignment"})


@pytest.fixture(scope="module")
def tiny_data():
    from dagr.data import MultiFeatures

    return MultiFeatures(views=["fourier", "zernike"]).take(train=96, val=40, test=40)


def test_train_with_sphere_control(tiny_data):
    from dagr.train import predict, train

    seen = []
    result = train(_train_config(epochs=2, control={"name": "sphere"}), tiny_data,
                   epoch_callback=lambda model, epoch: seen.append(epoch) or {"marker": epoch})
    assert seen == [1, 2]
    assert [row["marker"] for row in result.history] == [1, 2]
    _, zs = predict(result.model, tiny_data.test)
    assert torch.allclose(zs["fourier"].norm(dim=1), torch.ones(40), atol=1e-5)


def test_train_with_loss_control(tiny_data):
    from dagr.train import train

    result = train(_train_config(control={"name": "barlow", "weight": 0.01}), tiny_data)
    assert result.history[0]["regularizer_loss"] > 0
    assert 0.0 <= result.test_accuracy <= 1.0

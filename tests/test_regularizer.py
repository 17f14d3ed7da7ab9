"""DAGR module: fixed and Pareto weighting against an explicit Algorithm 1."""

import math

import pytest
import torch
from torch import nn

import dagr
from dagr import DAGR, anchoring_loss, dispersion_loss, min_norm_alpha


def _toy(seed=0, batch=16, width=8):
    """Two encoders, a concat fusion head, and one batch of inputs and labels."""
    torch.manual_seed(seed)
    encoders = nn.ModuleDict({
        "audio": nn.Sequential(nn.Linear(5, 12), nn.Tanh(), nn.Linear(12, width)),
        "video": nn.Sequential(nn.Linear(7, 12), nn.Tanh(), nn.Linear(12, width)),
    }).double()
    head = nn.Linear(2 * width, 3).double()
    inputs = {"audio": torch.randn(batch, 5, dtype=torch.float64), "video": torch.randn(batch, 7, dtype=torch.float64)}
    labels = torch.randint(0, 3, (batch,))
    return encoders, head, inputs, labels


def _task_loss(encoders, head, inputs, labels):
    zs = {key: encoders[key](inputs[key]) for key in encoders}
    logits = head(torch.cat([zs["audio"], zs["video"]], dim=1))
    return nn.functional.cross_entropy(logits, labels), zs


def _algorithm_1(encoders, head, inputs, labels, beta, t, tau):
    """Per-encoder gradients of Algorithm 1, each computed with torch.autograd.grad."""
    task, zs = _task_loss(encoders, head, inputs, labels)
    disp = {key: dispersion_loss(z, t) for key, z in zs.items()}
    anchor = anchoring_loss(zs, tau)
    expected, alphas = {}, {}
    for key, encoder in encoders.items():
        params = list(encoder.parameters())
        g_task = torch.autograd.grad(task, params, retain_graph=True)
        g_d = torch.autograd.grad(disp[key], params, retain_graph=True)
        g_a = torch.autograd.grad(anchor, params, retain_graph=True)
        alpha = min_norm_alpha(list(g_a), list(g_d))
        alphas[key] = float(alpha)
        expected[key] = [gt + beta * (alpha * ga + (1 - alpha) * gd) for gt, ga, gd in zip(g_task, g_a, g_d)]
    head_grad = torch.autograd.grad(task, list(head.parameters()))
    return expected, head_grad, alphas


def _assert_close(actual, expected, rtol=1e-5):
    scale = expected.abs().max().clamp_min(1e-12)
    assert float((actual - expected).abs().max() / scale) <= rtol


@pytest.mark.parametrize("tau", [0.0, 0.3])
def test_params_mode_matches_algorithm_1(tau):
    encoders, head, inputs, labels = _toy()
    expected, head_expected, alphas = _algorithm_1(encoders, head, inputs, labels, beta=0.15, t=2.0, tau=tau)

    reg = DAGR(beta=0.15, t=2.0, tau=tau, pareto="params")
    task, zs = _task_loss(encoders, head, inputs, labels)
    out = reg(zs, params=encoders)
    (task + out.loss).backward()

    for key, encoder in encoders.items():
        assert float(out.alpha[key]) == pytest.approx(alphas[key], rel=1e-6, abs=1e-9)
        for param, grad in zip(encoder.parameters(), expected[key]):
            _assert_close(param.grad, grad)
    for param, grad in zip(head.parameters(), head_expected):
        _assert_close(param.grad, grad)


def test_params_mode_accepts_sequences_of_parameters():
    encoders, head, inputs, labels = _toy(seed=1)
    reg = DAGR(beta=0.2, pareto="params")
    _, zs = _task_loss(encoders, head, inputs, labels)
    by_name = reg(zs, params=encoders).alpha
    _, zs = _task_loss(encoders, head, inputs, labels)
    by_position = reg([zs["audio"], zs["video"]], params=[list(encoders["audio"].parameters()),
                                                          encoders["video"].parameters()]).alpha
    assert float(by_name["audio"]) == pytest.approx(float(by_position["0"]))
    assert float(by_name["video"]) == pytest.approx(float(by_position["1"]))


def test_features_mode_uses_embedding_gradients():
    encoders, head, inputs, labels = _toy(seed=2)
    task, zs = _task_loss(encoders, head, inputs, labels)
    leaves = {key: z.detach().requires_grad_() for key, z in zs.items()}
    u_a = torch.autograd.grad(anchoring_loss(leaves, 0.1), list(leaves.values()))
    expected = {key: float(min_norm_alpha(u_a[index], torch.autograd.grad(dispersion_loss(leaves[key]), leaves[key])[0]))
                for index, key in enumerate(leaves)}

    out = DAGR(beta=0.1, tau=0.1, pareto="features")(zs)
    for key in zs:
        assert float(out.alpha[key]) == pytest.approx(expected[key], rel=1e-9)
        assert 0.0 <= float(out.alpha[key]) <= 1.0


def test_fixed_mode_value_is_equation_8():
    encoders, head, inputs, labels = _toy(seed=3)
    _, zs = _task_loss(encoders, head, inputs, labels)
    out = DAGR(lambda_d=0.3, lambda_a=0.7, t=1.5, tau=0.2)(zs)
    expected = 0.3 * (dispersion_loss(zs["audio"], 1.5) + dispersion_loss(zs["video"], 1.5)) / 2 \
        + 0.7 * anchoring_loss(zs, 0.2)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-12)
    assert set(out.dispersion) == {"audio", "video"}
    assert out.alpha == {"audio": None, "video": None}


def test_fixed_mode_head_gets_only_task_gradient():
    encoders, head, inputs, labels = _toy(seed=4)
    task, zs = _task_loss(encoders, head, inputs, labels)
    expected = torch.autograd.grad(task, list(head.parameters()), retain_graph=True)
    (task + DAGR(lambda_d=1.0, lambda_a=1.0)(zs).loss).backward()
    for param, grad in zip(head.parameters(), expected):
        assert torch.equal(param.grad, grad)


def test_pareto_value_and_logged_parts():
    encoders, head, inputs, labels = _toy(seed=5)
    _, zs = _task_loss(encoders, head, inputs, labels)
    out = DAGR(beta=0.2, pareto="features")(zs)
    expected = 0.2 * sum(out.alpha[key] * out.anchoring + (1 - out.alpha[key]) * out.dispersion[key] for key in zs)
    assert out.loss.item() == pytest.approx(float(expected), rel=1e-9)
    row = out.as_floats()
    assert set(row) == {"loss", "anchoring", "dispersion/audio", "dispersion/video", "alpha/audio", "alpha/video"}
    assert all(math.isfinite(value) for value in row.values())


def test_alpha_every_reuses_alpha_between_refreshes():
    encoders, head, inputs, labels = _toy(seed=6)
    reg = DAGR(beta=0.1, pareto="params", alpha_every=3)
    seen = []
    optimizer = torch.optim.SGD(encoders.parameters(), lr=0.5)
    for _ in range(4):
        optimizer.zero_grad()
        task, zs = _task_loss(encoders, head, inputs, labels)
        out = reg(zs, params=encoders)
        (task + out.loss).backward()
        optimizer.step()
        seen.append(float(out.alpha["audio"]))
    assert seen[0] == seen[1] == seen[2]
    assert seen[3] != seen[0]


def test_no_grad_call_returns_values():
    encoders, head, inputs, labels = _toy(seed=7)
    with torch.no_grad():
        _, zs = _task_loss(encoders, head, inputs, labels)
        out = DAGR(beta=0.1, pareto="features")(zs)
    assert math.isfinite(float(out.loss))
    assert float(out.alpha["audio"]) == 0.5


def test_three_modalities_fixed_and_pareto():
    torch.manual_seed(8)
    zs = {name: torch.randn(10, 4, requires_grad=True) for name in ("a", "b", "c")}
    for reg in (DAGR(), DAGR(beta=0.1, pareto="features")):
        out = reg(zs)
        grads = torch.autograd.grad(out.loss, list(zs.values()))
        assert all(bool(torch.isfinite(grad).all()) for grad in grads)
        assert len(out.dispersion) == 3


@pytest.mark.parametrize("kwargs, match", [
    ({"pareto": "layers", "beta": 0.1}, "pareto"),
    ({"pareto": "params", "lambda_d": 0.1}, "lambda_d=0.1: fixed weights do not apply"),
    ({"beta": 0.1}, "beta"),
    ({"lambda_d": -0.1}, "lambda_d"),
    ({"lambda_a": -1.0}, "lambda_a"),
    ({"beta": -0.1, "pareto": "features"}, "beta"),
    ({"t": 0.0}, "t must be > 0"),
    ({"t": -1.0}, "t must be > 0"),
    ({"tau": -0.5}, "tau must be >= 0"),
    ({"alpha_every": 0}, "alpha_every"),
])
def test_constructor_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DAGR(**kwargs)


def test_constructor_rejects_wrong_types():
    with pytest.raises(TypeError, match="t must be a real number"):
        DAGR(t="2")
    with pytest.raises(TypeError, match="tau"):
        DAGR(tau=None)


def test_params_mode_without_params():
    encoders, head, inputs, labels = _toy()
    _, zs = _task_loss(encoders, head, inputs, labels)
    with pytest.raises(ValueError, match="needs each modality's encoder"):
        DAGR(beta=0.1, pareto="params")(zs)


def test_params_mode_with_unrelated_parameter():
    encoders, head, inputs, labels = _toy()
    _, zs = _task_loss(encoders, head, inputs, labels)
    wrong = {"audio": encoders["audio"], "video": list(encoders["video"].parameters()) + [head.weight]}
    with pytest.raises(ValueError, match="does not depend on parameter '4'.* \\(modality 'video'\\)"):
        DAGR(beta=0.1, pareto="params")(zs, params=wrong)
    with pytest.raises(ValueError, match="does not depend on parameter"):
        DAGR(beta=0.1, pareto="params")(zs, params={"audio": encoders["video"], "video": encoders["audio"]})


def test_params_mode_mismatched_params():
    encoders, head, inputs, labels = _toy()
    _, zs = _task_loss(encoders, head, inputs, labels)
    reg = DAGR(beta=0.1, pareto="params")
    with pytest.raises(ValueError, match="no encoder for modalities \\['video'\\]"):
        reg(zs, params={"audio": encoders["audio"]})
    with pytest.raises(ValueError, match="lists 1 encoders"):
        reg(zs, params=[encoders["audio"]])
    with pytest.raises(TypeError, match="single nn.Module"):
        reg(zs, params=encoders["audio"])
    with pytest.raises(TypeError, match="params\\['audio'\\] must be an nn.Module"):
        reg(zs, params={"audio": 3, "video": encoders["video"]})


def test_call_rejects_bad_embeddings():
    reg = DAGR()
    good = torch.randn(4, 3)
    with pytest.raises(ValueError, match="at least 2 modalities"):
        reg({"audio": good})
    with pytest.raises(ValueError, match="batch size, got 4 for 'audio' and 5 for 'video'"):
        reg({"audio": good, "video": torch.randn(5, 3)})
    with pytest.raises(ValueError, match="2-D .* \\(modality 'video'\\)"):
        reg({"audio": good, "video": torch.randn(4, 3, 1)})
    bad = good.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf values \\(modality 'video'\\)"):
        reg({"audio": good, "video": bad})
    with pytest.raises(TypeError, match="single tensor"):
        reg(good)
    with pytest.raises(ValueError, match="at least 2 samples"):
        reg({"audio": torch.randn(1, 3), "video": torch.randn(1, 3)})
    with pytest.raises(ValueError, match="at least 2 samples"):
        reg({"audio": torch.randn(0, 3), "video": torch.randn(0, 3)})


def test_package_exports():
    assert dagr.DAGR is DAGR
    assert callable(dagr.set_seed)
    assert dagr.__version__

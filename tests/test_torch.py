"""The torch backend against independent oracles.

- an ``nn.Linear`` logistic model reproduces the numpy engine's LogisticRegression
  (the engine itself is checked against LOO retraining and statsmodels elsewhere);
- exact HVPs against central finite differences of the gradient, per-sample gradients
  against a plain autograd loop;
- every iterative solver against a dense direct solve (and the low-rank one against the
  eigendecomposition it approximates);
- ``params="last_layer"`` against the logistic-regression engine on the same features;
- the paper's Fig. 2 (right) on a small CNN: predicted vs actual leave-one-out change.
"""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the torch backend needs PyTorch")

from sklearn.exceptions import NotFittedError  # noqa: E402

from skinfluence.exceptions import NotConvergedWarning  # noqa: E402
from skinfluence.linear_model import LogisticRegression  # noqa: E402
from skinfluence.torch import TorchInfluence  # noqa: E402
from skinfluence.torch._data import resolve_device  # noqa: E402

from conftest import shared_data  # noqa: E402

# torch's own forward-mode decompositions still call torch.jit.script once
pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def _rel(a, b):
    """Largest absolute difference relative to the largest reference entry."""
    a, b = (x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
            for x in (a, b))
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _linear_from(clf) -> torch.nn.Linear:
    """An nn.Linear holding a fitted logistic regression's coefficients (float64)."""
    lin = torch.nn.Linear(clf.coef_.shape[1], clf.coef_.shape[0]).double()
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(clf.coef_))
        lin.bias.copy_(torch.as_tensor(clf.intercept_))
    return lin


def _mlp(d_in, hidden, d_out, seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(d_in, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, d_out)
    ).to(dtype)


def _train(net, X, y, loss, weight_decay=0.0, steps=300, lr=0.05):
    """Full-batch Adam: a deterministic, reasonably (not fully) converged fit."""
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(steps):
        opt.zero_grad()
        out = net(X)
        value = (torch.nn.functional.cross_entropy(out, y) if loss == "cross_entropy"
                 else torch.nn.functional.binary_cross_entropy_with_logits(out[:, 0], y))
        value.backward()
        opt.step()
    return net


# ----------------------------------------------------------------------------------
# the linear model: exactly the sklearn engine
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize("solver", ["direct", "cg", "arnoldi"])
def test_linear_binary_matches_logistic_regression(cancer, solver):
    Xtr, ytr, Xte, yte = cancer
    C, n = 0.3, len(ytr)
    sw = np.random.RandomState(1).uniform(0.5, 2.0, n)
    clf = LogisticRegression(C=C, tol=1e-12, max_iter=10_000).fit(Xtr, ytr, sample_weight=sw)
    inf = TorchInfluence(_linear_from(clf), "bce_with_logits", solver=solver,
                         weight_decay={"weight": 1.0 / (C * n)}).fit(Xtr, ytr, sample_weight=sw)
    assert inf.diagnostics_["backend"] == "torch"
    assert inf.diagnostics_["null_dim"] == 0
    assert _rel(inf.influence(Xte, yte), clf.influence(Xte, yte)) < 1e-6
    assert _rel(inf.self_influence(), clf.self_influence()) < 1e-6
    assert _rel(inf.loo_effect(Xte[:5], yte[:5]), clf.loo_effect(Xte[:5], yte[:5])) < 1e-6
    assert _rel(inf.perturbation_influence(Xte[:4], yte[:4]),
                clf.perturbation_influence(Xte[:4], yte[:4])) < 1e-6
    assert _rel(inf.test_loss(Xte, yte), clf.influence_explainer().test_loss(Xte, yte)) < 1e-12


@pytest.mark.parametrize("solver", ["direct", "cg", "arnoldi"])
def test_linear_multinomial_matches_logistic_regression(wine, solver):
    Xtr, ytr, Xte, yte = wine
    C, n = 0.5, len(ytr)
    clf = LogisticRegression(C=C, tol=1e-12, max_iter=10_000).fit(Xtr, ytr)
    inf = TorchInfluence(_linear_from(clf), "cross_entropy", solver=solver,
                         weight_decay={"*bias": 0.0, "*": 1.0 / (C * n)}).fit(Xtr, ytr)
    # the shared shift of the three intercepts is an exact null direction
    assert inf.diagnostics_["null_dim"] == 1
    assert _rel(inf.influence(Xte, yte), clf.influence(Xte, yte)) < 1e-6
    assert _rel(inf.self_influence(), clf.self_influence()) < 1e-6
    assert _rel(inf.perturbation_influence(Xte[:3], yte[:3], aggregate="sum"),
                clf.perturbation_influence(Xte[:3], yte[:3], aggregate="sum")) < 1e-6
    top = clf.rank_training_points(Xte[:2], yte[:2], kind="helpful", top_k=7)
    np.testing.assert_array_equal(
        inf.rank_training_points(Xte[:2], yte[:2], kind="helpful", top_k=7), top)


def test_penalized_bias_matches_liblinear(cancer):
    """A plain float ``weight_decay`` penalizes the bias too: liblinear's objective."""
    from sklearn.linear_model import LogisticRegression as SkLogisticRegression

    import skinfluence

    Xtr, ytr, Xte, yte = cancer
    C, n = 0.2, len(ytr)
    clf = SkLogisticRegression(C=C, solver="liblinear", tol=1e-12, max_iter=10_000).fit(Xtr, ytr)
    engine = skinfluence.explain(clf, Xtr, ytr)
    inf = TorchInfluence(_linear_from(clf), "bce_with_logits",
                         weight_decay=1.0 / (C * n)).fit(Xtr, ytr)
    assert _rel(inf.influence(Xte, yte), engine.influence(Xte, yte)) < 1e-6


def test_mse_linear_matches_engine_ridge(cancer):
    """``loss="mse"`` is the engine's half squared error: ridge in closed form."""
    from skinfluence import Influence
    from skinfluence.losses import SquaredError
    from skinfluence.objective import GLMObjective, LinearDesign

    Xtr, _, Xte, _ = cancer
    rng = np.random.RandomState(0)
    w_true = rng.standard_normal(Xtr.shape[1])
    ytr = Xtr @ w_true + rng.standard_normal(len(Xtr))
    yte = Xte @ w_true + rng.standard_normal(len(Xte))
    n, wd = len(ytr), 0.05
    design = np.hstack([Xtr, np.ones((n, 1))])
    lam = np.r_[np.full(Xtr.shape[1], n * wd), 0.0]
    theta = np.linalg.solve(design.T @ design + np.diag(lam), design.T @ ytr)
    engine = Influence(GLMObjective(SquaredError(), LinearDesign(Xtr), ytr, theta[None, :],
                                    penalty=lam))
    lin = torch.nn.Linear(Xtr.shape[1], 1).double()
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(theta[None, :-1]))
        lin.bias.copy_(torch.as_tensor(theta[-1:]))
    inf = TorchInfluence(lin, "mse", weight_decay={"weight": wd}).fit(Xtr, ytr)
    assert _rel(inf.influence(Xte, yte), engine.influence(Xte, yte)) < 1e-8
    assert _rel(inf.self_influence(), engine.self_influence()) < 1e-8


# ----------------------------------------------------------------------------------
# derivatives: finite differences and autograd loops
# ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_mlp(digits):
    """A tanh MLP (10 classes, 64 -> 6 -> 10: 460 parameters) trained briefly on digits."""
    Xtr, ytr, Xte, yte = digits
    Xtr, ytr = Xtr[:200], ytr[:200]
    net = _train(_mlp(64, 6, 10), Xtr, ytr, "cross_entropy", weight_decay=1e-3)
    return net, Xtr, ytr, Xte[:6], yte[:6]


def _objective_gradient(obj, flat):
    """Gradient of J at arbitrary parameters, by plain autograd (no torch.func)."""
    flat = flat.detach().clone().requires_grad_(True)
    value = 0.5 * torch.dot(obj.penalty * flat, flat)
    out = obj.model(flat, obj.X)
    value = value + torch.dot(obj.sample_weight, obj.loss_fn(out, obj.y))
    return torch.autograd.grad(value, flat)[0]


def test_hvp_matches_finite_differences(small_mlp):
    net, X, y, _, _ = small_mlp
    sw = np.random.RandomState(0).uniform(0.5, 1.5, len(y))
    inf = TorchInfluence(net, "cross_entropy", weight_decay=1e-3, damping=0.01,
                         convergence_tol=np.inf).fit(X, y, sample_weight=sw)
    obj = inf.objective_
    V = torch.as_tensor(np.random.RandomState(1).standard_normal((obj.n_params, 3)))
    HV = obj.hessp(V)
    eps = 1e-5
    for j in range(V.shape[1]):
        fd = (_objective_gradient(obj, obj.theta + eps * V[:, j])
              - _objective_gradient(obj, obj.theta - eps * V[:, j])) / (2 * eps)
        assert _rel(HV[:, j], fd) < 1e-7
    # the mini-batch form used by LiSSA: rows and scale
    rows = np.arange(0, len(y), 3)
    part = obj.hessp(V, index=rows, data_scale=2.0) - obj.penalty[:, None] * V
    sub = type(obj)(obj.model, obj.loss_fn, obj.X[rows], obj.y[rows], obj.sample_weight[rows],
                    torch.zeros_like(obj.penalty), device=obj.device, batch_size=7)
    assert _rel(part, 2.0 * sub.hessp(V)) < 1e-12


def test_per_sample_gradients_match_autograd_loop(small_mlp):
    net, X, y, _, _ = small_mlp
    inf = TorchInfluence(net, "cross_entropy", convergence_tol=np.inf, damping=0.01,
                         batch_size=16).fit(X, y)
    obj = inf.objective_
    G = obj.sample_gradients(obj.X[:40], obj.y[:40])
    for i in range(0, 40, 7):
        flat = obj.theta.detach().clone().requires_grad_(True)
        value = obj.loss_fn(obj.model(flat, obj.X[i:i + 1]), obj.y[i:i + 1])[0]
        expected = torch.autograd.grad(value, flat)[0]
        assert _rel(G[i], expected) < 1e-12


def test_perturbation_influence_matches_finite_differences(small_mlp):
    """``I_pert`` is the input derivative of ``-n g_t^T H^-1 grad_theta l(x, y_i)``."""
    net, X, y, Xte, yte = small_mlp
    inf = TorchInfluence(net, "cross_entropy", damping=0.01, convergence_tol=np.inf).fit(X, y)
    rows = np.array([0, 5, 17])
    pert = inf.perturbation_influence(Xte[:2], yte[:2], train_indices=rows)
    assert pert.shape == (3, 2, 64)
    factors = torch.as_tensor(inf.influence_factors(Xte[:2], yte[:2]))
    obj = inf.objective_
    direction = torch.as_tensor(np.random.RandomState(2).standard_normal(64))
    eps = 1e-5
    for r, i in enumerate(rows):
        x = obj.X[i]
        g_plus = obj.sample_gradients((x + eps * direction)[None], obj.y[i:i + 1])
        g_minus = obj.sample_gradients((x - eps * direction)[None], obj.y[i:i + 1])
        fd = -len(y) * ((g_plus - g_minus) / (2 * eps)) @ factors
        assert _rel(pert[r] @ direction.numpy(), fd[0].numpy()) < 1e-6


# ----------------------------------------------------------------------------------
# solvers agree with a dense direct solve
# ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def direct_reference(small_mlp):
    net, X, y, Xte, yte = small_mlp
    inf = TorchInfluence(net, "cross_entropy", damping=0.01, solver="direct",
                         convergence_tol=np.inf).fit(X, y)
    return inf, inf.influence(Xte, yte)


def test_cg_matches_direct(small_mlp, direct_reference):
    net, X, y, Xte, yte = small_mlp
    inf = TorchInfluence(net, "cross_entropy", damping=0.01, solver="cg",
                         solver_options={"rtol": 1e-10}, convergence_tol=np.inf).fit(X, y)
    assert _rel(inf.influence(Xte, yte), direct_reference[1]) < 1e-7
    assert _rel(inf.self_influence(train_indices=np.arange(20)),
                direct_reference[0].self_influence(train_indices=np.arange(20))) < 1e-7


def test_arnoldi_full_rank_is_exact_and_low_rank_is_its_eigen_truncation(small_mlp,
                                                                          direct_reference):
    net, X, y, Xte, yte = small_mlp
    ref_inf, ref = direct_reference
    P = ref_inf.n_params_
    full = TorchInfluence(net, "cross_entropy", damping=0.01, solver="arnoldi",
                          solver_options={"rank": P}, convergence_tol=np.inf,
                          random_state=0).fit(X, y)
    assert _rel(full.influence(Xte, yte), ref) < 1e-6
    # rank k: the exact inverse on the top-k eigenvectors of H (by magnitude)
    k = 30
    low = TorchInfluence(net, "cross_entropy", damping=0.01, solver="arnoldi",
                         solver_options={"rank": k, "krylov_dim": 200}, convergence_tol=np.inf,
                         random_state=0).fit(X, y)
    hess = ref_inf.objective_.hessian().numpy()
    evals, evecs = np.linalg.eigh(hess)
    top = np.argsort(-np.abs(evals))[:k]
    V, lam = evecs[:, top], evals[top] + 0.01 * len(y)
    g = ref_inf.objective_.sample_gradients(*ref_inf._test_inputs(Xte, yte)).numpy().T
    expected = V @ ((V.T @ g) / lam[:, None])
    assert _rel(low.influence_factors(Xte, yte), expected) < 1e-6


def test_lissa_matches_direct(small_mlp):
    net, X, y, Xte, yte = small_mlp
    # a larger damping keeps the recursion short: (1 - damping / scale)^depth is tiny
    ref = TorchInfluence(net, "cross_entropy", damping=0.1, solver="direct",
                         convergence_tol=np.inf).fit(X, y).influence(Xte[:2], yte[:2])
    # full-batch: the deterministic Neumann series, converged
    inf = TorchInfluence(net, "cross_entropy", damping=0.1, solver="lissa",
                         solver_options={"depth": 600, "repeats": 1, "batch_size": len(y)},
                         convergence_tol=np.inf, random_state=0).fit(X, y)
    assert _rel(inf.influence(Xte[:2], yte[:2]), ref) < 1e-5
    # mini-batches: the paper's stochastic version, close but noisy
    noisy = TorchInfluence(net, "cross_entropy", damping=0.1, solver="lissa",
                           solver_options={"depth": 300, "repeats": 4, "batch_size": 50},
                           convergence_tol=np.inf, random_state=0).fit(X, y)
    est = noisy.influence(Xte[:2], yte[:2])
    for t in range(2):
        assert np.corrcoef(est[:, t], ref[:, t])[0, 1] > 0.95


def test_float32_matches_float64(small_mlp, direct_reference):
    net, X, y, Xte, yte = small_mlp
    import copy

    net32 = copy.deepcopy(net).float()
    for solver in ("direct", "cg"):
        inf = TorchInfluence(net32, "cross_entropy", damping=0.01, solver=solver,
                             convergence_tol=np.inf).fit(X.astype(np.float32), y)
        assert inf.objective_.dtype == torch.float32
        assert _rel(inf.influence(Xte, yte), direct_reference[1]) < 1e-3


# ----------------------------------------------------------------------------------
# the last layer: a logistic regression on frozen features
# ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def features_model(digits):
    """A net whose last layer is sklearn's logistic regression on its hidden features."""
    Xtr, ytr, Xte, yte = digits
    Xtr, ytr = Xtr[:300], ytr[:300]
    net = _train(_mlp(64, 12, 10, seed=3), Xtr, ytr, "cross_entropy", steps=150)
    body = net[:2]
    with torch.no_grad():
        F_tr = body(torch.as_tensor(Xtr)).numpy()
        F_te = body(torch.as_tensor(Xte[:8])).numpy()
    C = 2.0
    clf = LogisticRegression(C=C, tol=1e-12, max_iter=20_000).fit(F_tr, ytr)
    with torch.no_grad():
        net[2].weight.copy_(torch.as_tensor(clf.coef_))
        net[2].bias.copy_(torch.as_tensor(clf.intercept_))
    decay = {"*bias": 0.0, "*": 1.0 / (C * len(ytr))}
    return net, decay, clf, (Xtr, ytr, Xte[:8], yte[:8]), (F_tr, F_te)


def test_last_layer_equals_logistic_regression_on_features(features_model):
    net, decay, clf, (Xtr, ytr, Xte, yte), (F_tr, F_te) = features_model
    inf = TorchInfluence(net, "cross_entropy", params="last_layer",
                         weight_decay=decay).fit(Xtr, ytr)
    assert inf.param_names_ == ["2.weight", "2.bias"]
    assert inf.diagnostics_["backend"] == "engine"
    assert _rel(inf.influence(Xte, yte), clf.influence(F_te, yte)) < 1e-6
    assert _rel(inf.self_influence(), clf.self_influence()) < 1e-6
    # the exact Newton step exists here, as for the linear model
    assert _rel(inf.loo_effect(Xte, yte, method="newton"),
                clf.loo_effect(F_te, yte, method="newton")) < 1e-6
    # factors come back in the torch layout [weight.ravel(), bias]
    factors = inf.influence_factors(Xte[:2], yte[:2])
    engine = clf.influence_explainer().influence_factors(F_te[:2], yte[:2]).reshape(10, 13, 2)
    np.testing.assert_allclose(factors[:120], engine[:, :12, :].reshape(120, 2), atol=1e-12)
    np.testing.assert_allclose(factors[120:], engine[:, 12, :], atol=1e-12)


def test_last_layer_torch_solvers_equal_the_engine(features_model):
    """The torch path on cached features (here via Arnoldi at full rank) agrees too."""
    net, decay, clf, (Xtr, ytr, Xte, yte), (F_tr, F_te) = features_model
    inf = TorchInfluence(net, "cross_entropy", params="last_layer", weight_decay=decay,
                         solver="arnoldi", solver_options={"rank": 130},
                         random_state=0).fit(Xtr, ytr)
    assert inf.diagnostics_["backend"] == "torch"
    assert inf.diagnostics_["null_dim"] == 1
    assert _rel(inf.influence(Xte, yte), clf.influence(F_te, yte)) < 1e-6


def test_last_layer_perturbation_chains_through_the_features(features_model):
    """Input gradients of the engine route equal those of differentiating the whole net."""
    net, decay, clf, (Xtr, ytr, Xte, yte), _ = features_model
    engine_route = TorchInfluence(net, "cross_entropy", params="last_layer",
                                  weight_decay=decay).fit(Xtr, ytr)
    whole = TorchInfluence(net, "cross_entropy", params=["2"], weight_decay=decay,
                           solver="direct").fit(Xtr, ytr)
    assert whole.diagnostics_["backend"] == "torch"
    rows = np.arange(10)
    a = engine_route.perturbation_influence(Xte[:2], yte[:2], train_indices=rows)
    b = whole.perturbation_influence(Xte[:2], yte[:2], train_indices=rows)
    assert a.shape == (10, 2, 64)
    assert _rel(a, b) < 1e-6


# ----------------------------------------------------------------------------------
# inputs, devices, errors
# ----------------------------------------------------------------------------------
def test_dataloader_and_tensors_give_the_same_influence(small_mlp, direct_reference):
    from torch.utils.data import DataLoader, TensorDataset

    net, X, y, Xte, yte = small_mlp
    train = DataLoader(TensorDataset(torch.as_tensor(X), torch.as_tensor(y)), batch_size=32)
    test = DataLoader(TensorDataset(torch.as_tensor(Xte), torch.as_tensor(yte)), batch_size=4)
    inf = TorchInfluence(net, "cross_entropy", damping=0.01, solver="direct",
                         convergence_tol=np.inf).fit(train)
    assert _rel(inf.influence(test, None), direct_reference[1]) < 1e-12
    shuffled = DataLoader(TensorDataset(torch.as_tensor(X), torch.as_tensor(y)), shuffle=True)
    with pytest.raises(ValueError, match="shuffle"):
        TorchInfluence(net, "cross_entropy").fit(shuffled)


def test_fit_leaves_the_module_alone(small_mlp):
    net, X, y, _, _ = small_mlp
    net.train()
    before = [p.detach().clone() for p in net.parameters()]
    TorchInfluence(net, "cross_entropy", damping=0.01, convergence_tol=np.inf).fit(X, y)
    assert net.training
    for p, q in zip(net.parameters(), before):
        assert torch.equal(p, q)


def test_device_none_prefers_cuda_when_available(monkeypatch):
    lin = torch.nn.Linear(2, 2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device(None, lin).type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device(None, lin).type == "cpu"
    assert resolve_device("cpu", lin).type == "cpu"


def test_unconverged_fit_warns(small_mlp):
    net, X, y, _, _ = small_mlp
    untrained = _mlp(64, 6, 10, seed=5)
    with pytest.warns(NotConvergedWarning, match="stationary"):
        TorchInfluence(untrained, "cross_entropy", damping=0.01).fit(X, y)


@pytest.mark.parametrize("kwargs, match", [
    ({"loss": "hinge"}, "loss must be one of"),
    ({"loss": "bce_with_logits"}, "one output"),
    ({"params": ["nope"]}, "neither a parameter nor a module"),
    ({"weight_decay": {"*.gamma": 1.0}}, "match none"),
    ({"weight_decay": -1.0}, ">= 0"),
    ({"damping": -0.1}, "damping"),
    ({"solver": "woodbury"}, "woodbury"),
])
def test_bad_options_raise(small_mlp, kwargs, match):
    net, X, y, _, _ = small_mlp
    options = {"loss": "cross_entropy", "convergence_tol": np.inf, **kwargs}
    with pytest.raises(ValueError, match=match):
        TorchInfluence(net, **options).fit(X, y)


def test_bad_data_and_unavailable_methods_raise(small_mlp):
    net, X, y, Xte, yte = small_mlp
    inf = TorchInfluence(net, "cross_entropy", damping=0.01, convergence_tol=np.inf)
    with pytest.raises(NotFittedError):
        inf.influence(Xte, yte)
    with pytest.raises(ValueError, match="0 .. 9"):
        inf.fit(X, y + 1)
    with pytest.raises(ValueError, match="rows"):
        inf.fit(X, y[:-1])
    inf.fit(X, y)
    with pytest.raises(ValueError, match="X_test rows have shape"):
        inf.influence(Xte[:, :10], yte)
    with pytest.raises(ValueError, match="newton"):
        inf.loo_effect(Xte, yte, method="newton")
    with pytest.raises(ValueError, match="out of range"):
        inf.influence(Xte, yte, train_indices=[len(y)])


def test_callable_loss_equals_builtin(small_mlp, direct_reference):
    net, X, y, Xte, yte = small_mlp

    def loss(out, target):
        return torch.nn.functional.cross_entropy(out, target, reduction="none")

    inf = TorchInfluence(net, loss, damping=0.01, solver="direct",
                         convergence_tol=np.inf).fit(X, y)
    assert _rel(inf.influence(Xte, yte), direct_reference[1]) < 1e-12


# ----------------------------------------------------------------------------------
# skorch
# ----------------------------------------------------------------------------------
def test_skorch_classifier_in_a_pipeline(wine):
    pytest.importorskip("skorch", reason="skorch is an optional extra")
    from sklearn.preprocessing import StandardScaler

    from skinfluence.pipeline import make_pipeline
    from skinfluence.torch.skorch import NeuralNetClassifier, explain_skorch

    Xtr, ytr, Xte, yte = wine
    C, n = 0.5, len(ytr)
    decay = {"*bias": 0.0, "*": 1.0 / (C * n)}
    torch.manual_seed(0)
    net = NeuralNetClassifier(
        torch.nn.Linear, module__in_features=13, module__out_features=3,
        module__dtype=torch.float64, criterion=torch.nn.CrossEntropyLoss, max_epochs=5,
        lr=0.1, train_split=None, verbose=0, influence__weight_decay=decay,
    )
    pipe = make_pipeline(StandardScaler(), net).fit(Xtr, ytr)
    # the same preprocessing and a converged logistic regression: the exact oracle
    lr_pipe = make_pipeline(StandardScaler(), LogisticRegression(C=C, tol=1e-12,
                                                                 max_iter=10_000))
    lr_pipe.fit(Xtr, ytr)
    clf = lr_pipe[-1]
    with torch.no_grad():
        pipe[-1].module_.weight.copy_(torch.as_tensor(clf.coef_))
        pipe[-1].module_.bias.copy_(torch.as_tensor(clf.intercept_))
    # the net's own methods on its inputs, and the pipeline's on raw rows
    Z_te = pipe[0].transform(Xte)
    scores = pipe[-1].influence(Z_te, yte)
    assert _rel(scores, clf.influence(Z_te, yte)) < 1e-6
    assert _rel(pipe.influence(Xte, yte), lr_pipe.influence(Xte, yte)) < 1e-6
    # perturbation gradients mapped back through the scaler, as for sklearn models
    assert _rel(pipe.perturbation_influence(Xte[:2], yte[:2]),
                lr_pipe.perturbation_influence(Xte[:2], yte[:2])) < 1e-6
    np.testing.assert_array_equal(pipe.rank_training_points(kind="self", top_k=5),
                                  lr_pipe.rank_training_points(kind="self", top_k=5))
    # any fitted skorch net or pipeline, without the drop-in classes
    inf = explain_skorch(pipe, Xtr, ytr, weight_decay=decay)
    assert _rel(inf.influence(Xte, yte), scores) < 1e-12
    # influence options are skorch parameters
    assert pipe[-1].get_params()["influence__weight_decay"] == decay
    held_out = NeuralNetClassifier(torch.nn.Linear, module__in_features=13,
                                   module__out_features=3, module__dtype=torch.float64,
                                   criterion=torch.nn.CrossEntropyLoss, max_epochs=1,
                                   verbose=0).fit(Z_te, yte)
    with pytest.raises(ValueError, match="train_split=None"):
        held_out.influence(Z_te, yte)


def _fig2_cnn() -> torch.nn.Module:
    """A small all-convolutional-style net (1,714 parameters; the paper's had 2,616)."""
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 4, 5, stride=2), nn.Tanh(),       # 28x28 -> 12x12
        nn.Conv2d(4, 8, 3, stride=2), nn.Tanh(),       # -> 5x5
        nn.Conv2d(8, 8, 3), nn.Tanh(),                 # -> 3x3
        nn.Flatten(), nn.Linear(72, 10),
    )


def _retrain_from_fit(net, X, y, removed, X_test, y_test, *, steps, lr, momentum=0.9):
    """Test-loss change after ``steps`` of full-batch momentum GD from the fit, per removed row.

    Every removal and one control run that keeps all rows start from the fitted
    parameters and take the same deterministic steps (one ``vmap`` over the models), so the
    difference to the control isolates the effect of the row, not of the extra training.
    Removal drops the row's term from ``sum_i l_i / n``, the objective influence describes.
    """
    from torch.func import functional_call, grad, stack_module_state, vmap

    F = torch.nn.functional
    n = X.shape[0]
    params, _ = stack_module_state([net] * (len(removed) + 1))
    params = {k: v.detach().clone() for k, v in params.items()}
    keep = torch.ones(len(removed) + 1, n, dtype=X.dtype)
    keep[torch.arange(len(removed)), torch.as_tensor(removed)] = 0.0

    def objective(p, mask):
        return torch.dot(mask, F.cross_entropy(functional_call(net, p, (X,)), y,
                                                reduction="none")) / n

    step_grads = vmap(grad(objective))
    velocity = {k: torch.zeros_like(v) for k, v in params.items()}
    for _ in range(steps):
        grads = step_grads(params, keep)
        for k in params:
            velocity[k] = momentum * velocity[k] + grads[k]
            params[k] = params[k] - lr * velocity[k]
    with torch.no_grad():
        losses = vmap(lambda p: F.cross_entropy(functional_call(net, p, (X_test,)), y_test))(
            params)
    return (losses[:-1] - losses[-1]).numpy()


def fig2_right(data, *, n_train=2000, epochs=30, n_removed=30, damping=0.01,
               retrain_steps=50, retrain_lr=0.1):
    """Koh & Liang Fig. 2 (right) scaled to a CPU: predicted vs actual LOO on a CNN.

    The paper trained on 10% of MNIST with Adam without converging, added damping 0.01
    (the Hessian was not positive definite), took the 100 most influential points of a
    misclassified test point and retrained from the fit for 30k steps.  Here: 2,000 rows,
    30 epochs of mini-batch Adam (train loss ~0.015, gradient not zero), the 30 most
    influential points, and 50 full-batch momentum steps from the fit for each removal.
    """
    rng = np.random.RandomState(0)
    rows = rng.choice(len(data["y_train"]), n_train, replace=False)
    X = torch.tensor(data["X_train"][rows] / 255.0, dtype=torch.float32).reshape(-1, 1, 28, 28)
    y = torch.tensor(data["y_train"][rows].astype(np.int64))
    X_pool = torch.tensor(data["X_test"][:500] / 255.0, dtype=torch.float32).reshape(
        -1, 1, 28, 28)
    y_pool = torch.tensor(data["y_test"][:500].astype(np.int64))

    torch.manual_seed(0)
    net = _fig2_cnn()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    order = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        perm = torch.randperm(n_train, generator=order)
        for lo in range(0, n_train, 100):
            batch = perm[lo:lo + 100]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(X[batch]), y[batch]).backward()
            opt.step()
    # "we arbitrarily picked a wrongly-classified test point": the median-loss one
    with torch.no_grad():
        out = net(X_pool)
        pool_loss = torch.nn.functional.cross_entropy(out, y_pool, reduction="none")
    wrong = torch.nonzero(out.argmax(1) != y_pool).flatten()
    t = int(wrong[torch.argsort(pool_loss[wrong])[len(wrong) // 2]])
    X_t, y_t = X_pool[t:t + 1], y_pool[t:t + 1]

    inf = TorchInfluence(net, "cross_entropy", damping=damping, solver="cg",
                         batch_size=n_train).fit(X, y)
    predicted = inf.loo_effect(X_t, y_t)[:, 0]
    removed = np.argsort(-np.abs(predicted))[:n_removed]
    actual = _retrain_from_fit(net, X, y, removed, X_t, y_t, steps=retrain_steps,
                               lr=retrain_lr)
    return {"predicted": predicted[removed], "actual": actual, "n_train": n_train,
            "n_params": inf.n_params_, "damping": damping}


@pytest.mark.slow
def test_cnn_influence_predicts_leave_one_out_retraining():
    from skinfluence.validation import pearson_r

    data = np.load(shared_data("mnist", "mnist.npz"))
    with warnings.catch_warnings():
        # the CNN is deliberately not converged: that is the point of the figure
        warnings.simplefilter("ignore", NotConvergedWarning)
        result = fig2_right(data)
    r = pearson_r(result["predicted"], result["actual"])
    print(f"\nFig. 2 right (CNN, {result['n_train']} MNIST rows, {result['n_params']} "
          f"parameters, damping {result['damping']}, {len(result['actual'])} removals): "
          f"Pearson R = {r:.3f}")
    assert r >= 0.7


def test_forward_mode_gradient_products_match_per_sample_gradients(small_mlp):
    """influence() scores training rows by jvps along the factors; same numbers as the
    per-sample gradients times the factors, with either path chosen by the column count."""
    import skinfluence.torch._influence as torch_influence

    net, X, y, Xt, yt = small_mlp
    inf = TorchInfluence(net, "cross_entropy", convergence_tol=np.inf, damping=0.01,
                         batch_size=16).fit(X, y)
    obj = inf.objective_
    V = torch.randn(obj.n_params, 5, dtype=obj.dtype, generator=torch.Generator().manual_seed(0))
    forward = obj.gradient_products(obj.X[:40], obj.y[:40], V)
    reverse = obj.sample_gradients(obj.X[:40], obj.y[:40]) @ V
    assert _rel(forward, reverse) < 1e-12
    fast = inf.influence(Xt[:3], yt[:3])
    limit = torch_influence.FORWARD_MODE_MAX_COLUMNS
    try:
        torch_influence.FORWARD_MODE_MAX_COLUMNS = 0
        slow = inf.influence(Xt[:3], yt[:3])
    finally:
        torch_influence.FORWARD_MODE_MAX_COLUMNS = limit
    np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-12 * np.abs(slow).max())

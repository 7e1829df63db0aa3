"""Influence functions for torch modules: the same conventions, on GPU where there is one.

This subpackage needs PyTorch (``pip install torch``); nothing else in skinfluence
imports torch.  Its entry point is :class:`TorchInfluence`::

    from skinfluence.torch import TorchInfluence

    inf = TorchInfluence(net, loss="cross_entropy", weight_decay=1e-4, damping=0.01)
    inf.fit(X_train, y_train)                 # numpy arrays, tensors or a DataLoader
    I = inf.influence(X_test, y_test)          # (n_train, n_test) numpy array
    delta = inf.loo_effect(X_test, y_test)     # predicted change when a row is removed
    top = inf.rank_training_points(X_test[:1], y_test[:1], kind="harmful", top_k=10)
    suspects = inf.rank_training_points(kind="self", top_k=50)
    grads = inf.perturbation_influence(X_test[:1], y_test[:1])   # d test loss / d x_i

Conventions
-----------
Exactly those of the scikit-learn estimators (:class:`skinfluence.Influence`).  The
objective is the mean per-sample training loss plus an L2 penalty over the chosen
parameters ``theta``,

``R(theta) = (1/n) sum_i s_i l(y_i, f(x_i; theta)) + 0.5 sum_j weight_decay_j theta_j^2``,

``J = n R``, ``H`` the Hessian of ``J`` at the module's parameters and ``g_i`` the
gradient of row ``i``'s loss:

- ``influence(X_test, y_test)[i, t] = -n s_i g_t^T H^-1 g_i`` (the paper's
  ``I_up,loss``); removing row ``i`` changes the loss at ``t`` by about
  ``-influence[i, t] / n``, so **positive = harmful**;
- ``loo_effect(..., method="influence") = -influence / n``;
- ``self_influence()`` = ``I_up,loss(z_i, z_i)`` (<= 0 for a positive definite ``H``);
- ``perturbation_influence`` = ``I_pert,loss``, the gradient of the test loss in the
  training inputs, shape ``(n_train, n_test) + input shape``;
- ``damping`` is added to the Hessian of ``R`` (``n * damping`` on that of ``J``).

So an ``nn.Linear`` logistic model with ``weight_decay = 1 / (C * n)`` on its weight and
none on its bias has the influence of ``skinfluence.linear_model.LogisticRegression(C=C)``
on the same data.  ``weight_decay`` is that of ``torch.optim.SGD``/``Adam`` (which add
``weight_decay * theta`` to the mean-loss gradient); ``AdamW``'s decoupled decay is not
an L2 penalty of any objective.

Leaving biases unpenalized
--------------------------
Pass a dict of ``fnmatch`` patterns: every parameter takes the strength of the first
pattern it matches and none when it matches nothing::

    TorchInfluence(net, weight_decay={"*bias": 0.0, "*": 1e-4})   # biases free
    TorchInfluence(linear, weight_decay={"weight": 1 / (C * n)})   # sklearn's convention

With ``loss="cross_entropy"`` an unpenalized bias of the output layer makes ``H``
singular: adding the same number to every logit changes no probability.  That
direction (and the same for any unpenalized weight column of an ``nn.Linear`` output
layer) is found exactly -- checked with a ``jvp`` on every training row -- and the solvers
work in its complement, as the numpy engine does for multinomial logistic regression.
``diagnostics_["null_dim"]`` reports how many directions were removed.

When damping is needed
----------------------
Influence assumes ``theta`` minimizes ``R`` with ``H`` positive definite.  That holds for
a convex model (a linear or last-layer model with ``weight_decay > 0``, or enough rows)
trained to convergence.  A network trained with early stopping, or any non-convex set
of parameters, has a non-zero gradient and usually negative or zero eigenvalues: pass
``damping`` (Koh & Liang use 0.01 for their CNN), which turns the step into the minimizer
of a damped quadratic model and makes every solver well posed.  Without it the direct
solver adds the damping it needs and warns
(:class:`~skinfluence.exceptions.IndefiniteHessianWarning`), CG warns on negative
curvature, and :meth:`TorchInfluence.fit` warns when the gradient is not small
(:class:`~skinfluence.exceptions.NotConvergedWarning`).

Choose ``damping`` above the magnitude of the most negative eigenvalue of the Hessian
of ``R`` (``solver="direct"`` reports it as ``solver_.min_eigenvalue_`` in ``J``'s
scale, i.e. times ``n``; a short ``solver="arnoldi"`` run shows the spectrum's ends in
``solver_.eigenvalues_``).  The automatic damping only lifts the smallest eigenvalue to
a tiny floor (``min_relative_eigenvalue`` times the largest), which keeps the solve
defined but lets that direction dominate the result; CG stops a column at the first
direction of negative curvature (a truncated solve, as the paper's Newton-CG did);
LiSSA diverges.  A small CNN trained 10 epochs on 2,000 MNIST rows had a smallest
eigenvalue near -0.04: ``damping=0.05`` made everything well posed there.

Solvers
-------
- ``"direct"``: the dense Hessian from ``n_params`` exact HVPs, factored by
  :class:`skinfluence.solvers.DirectSolver` in float64 (Cholesky; automatic damping
  with a warning when singular).  ``"auto"`` picks it up to 1024 parameters
  (building ``H`` costs one HVP per parameter).
- ``"cg"``: conjugate gradients on a block of right-hand sides, one vmapped HVP per
  iteration for all of them (``solver_options``: ``rtol``, ``maxiter``).  ``"auto"``
  above 1024 parameters.
- ``"lissa"``: the paper's stochastic recursion (``depth``, ``repeats``, ``scale``,
  ``batch_size``), same defaults as the numpy solver.
- ``"arnoldi"``: the top ``rank`` eigenpairs of ``H`` from Lanczos iterations, inverted
  on their span (``rank``, ``krylov_dim``): one pass of ``krylov_dim`` HVPs, then every
  solve is two small matrix products.

Per-sample gradients are ``torch.func.vmap(grad(...))``; Hessian-vector products are
exact, forward-over-reverse (``jvp`` of ``grad``), vmapped over blocks of vectors;
``batch_size`` rows and 32 vectors at a time keep memory bounded.  Everything runs on
the module's device -- CUDA when available and ``device=None`` -- in the module's dtype
(float32 or float64; call ``module.double()`` for the tightest agreement).

The last layer
--------------
``params="last_layer"`` freezes everything but the last layer run in ``forward`` (the
paper's Inception experiment): its inputs are computed once and cached.  When that
layer is an ``nn.Linear`` and the loss a built-in one, the problem *is* a linear model
on those features and the numpy engine answers (``engine_``): exact, fast, and
``method="newton"`` leave-one-out is available.  Otherwise (``solver="arnoldi"``, a
callable loss, another kind of layer) the torch solvers run on the cached features.

skorch
------
:mod:`skinfluence.torch.skorch` gives ``NeuralNetClassifier`` (and the binary and
regressor nets) the same methods, inside scikit-learn pipelines too.
"""

try:
    import torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised without torch only
    raise ImportError(
        "skinfluence.torch needs PyTorch. Install the CPU build with "
        "`pip install torch` (or follow pytorch.org for CUDA); the rest of skinfluence "
        "works without it."
    ) from exc

from ._influence import DIRECT_MAX_PARAMS, TorchInfluence
from ._model import FunctionalModel, TorchObjective
from ._solvers import (
    TorchArnoldiSolver,
    TorchCGSolver,
    TorchDirectSolver,
    TorchLissaSolver,
    make_torch_solver,
)

__all__ = [
    "TorchInfluence",
    "TorchObjective",
    "FunctionalModel",
    "TorchDirectSolver",
    "TorchCGSolver",
    "TorchLissaSolver",
    "TorchArnoldiSolver",
    "make_torch_solver",
    "DIRECT_MAX_PARAMS",
]

"""skorch integration: influence methods on ``NeuralNetClassifier`` and friends.

skorch is an optional extra (``pip install skorch``).  Two ways in:

1. Drop-in nets that keep their training data and gain the methods of
   :class:`~skinfluence.torch.TorchInfluence`::

       from skinfluence.torch.skorch import NeuralNetClassifier

       from skinfluence.pipeline import make_pipeline

       net = NeuralNetClassifier(MyModule, criterion=torch.nn.CrossEntropyLoss,
                                 train_split=None, influence__damping=0.01)
       pipe = make_pipeline(StandardScaler(), net).fit(X, y)
       pipe.influence(X_test, y_test)                  # raw rows, (n_train, n_test)
       pipe.perturbation_influence(X_test, y_test)     # in the raw features
       pipe.rank_training_points(kind="self", top_k=20)
       pipe[-1].influence(pipe[:-1].transform(X_test), y_test)   # the net on its inputs

   skinfluence's :class:`~skinfluence.pipeline.Pipeline` passes raw test rows through the
   fitted preprocessing and maps input gradients back through it, exactly as for the
   scikit-learn estimators; inside a plain scikit-learn pipeline call the net's methods
   on transformed rows.

   Options of :class:`~skinfluence.torch.TorchInfluence` are set with the
   ``influence__`` prefix (``influence__damping``, ``influence__params``,
   ``influence__solver``, ``influence__weight_decay``...), so they take part in
   ``set_params`` and grid searches like every skorch parameter, or passed as keywords
   to each method.

2. :func:`explain_skorch` for any fitted skorch net, or a pipeline ending in one,
   without refitting: ``explain_skorch(pipe, X, y).influence(X_test, y_test)`` takes raw
   inputs and runs them through the pipeline's transformers first.

The loss is the net's own criterion, per sample (``reduction="none"``), with skorch's
conventions: ``NLLLoss`` on a probability output is applied to ``log(p + eps)`` as
``NeuralNetClassifier`` does, ``CrossEntropyLoss`` and ``BCEWithLogitsLoss`` map to
the built-in losses, and other criteria (``MSELoss``...) are averaged over each row's
outputs, so that the mean over rows is the training loss.  ``weight_decay`` defaults to
``optimizer__weight_decay`` (all parameters penalized, as torch optimizers do).

Influence is about the rows the net was trained on: skorch's default
``train_split`` holds out a validation fold, so construct the net with
``train_split=None`` (a clear error says so otherwise).
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import torch

try:
    import skorch as _skorch
except ImportError as exc:  # pragma: no cover - exercised without skorch only
    raise ImportError(
        "skinfluence.torch.skorch needs skorch: pip install skorch"
    ) from exc

from ._influence import TorchInfluence

__all__ = [
    "InfluenceNetMixin",
    "NeuralNetClassifier",
    "NeuralNetBinaryClassifier",
    "NeuralNetRegressor",
    "explain_skorch",
    "skorch_loss",
]

_OPTION_NAMES = (
    "params", "weight_decay", "damping", "solver", "solver_options", "device",
    "batch_size", "convergence_tol", "random_state",
)


def skorch_loss(net):
    """The per-sample loss of a fitted skorch net, as ``TorchInfluence`` takes it."""
    criterion = net.criterion_
    if isinstance(criterion, torch.nn.CrossEntropyLoss) and _plain(criterion):
        return "cross_entropy"
    if isinstance(criterion, torch.nn.BCEWithLogitsLoss) and _plain(criterion):
        return "bce_with_logits"
    per_sample = copy.copy(criterion)
    per_sample.reduction = "none"
    log_of_probabilities = (isinstance(criterion, torch.nn.NLLLoss)
                            and isinstance(net, _skorch.NeuralNetClassifier))

    def loss(out, target):
        if log_of_probabilities:
            # NeuralNetClassifier.get_loss feeds log(p + eps) to NLLLoss
            out = torch.log(out + torch.finfo(out.dtype).eps)
        if isinstance(net, _skorch.NeuralNetBinaryClassifier):
            out = out.reshape(-1)
        values = per_sample(out, target)
        return values.reshape(values.shape[0], -1).mean(dim=1)

    return loss


def _plain(criterion) -> bool:
    """No class weights, label smoothing or pos_weight: the built-in loss is exact."""
    return (getattr(criterion, "weight", None) is None
            and getattr(criterion, "pos_weight", None) is None
            and not getattr(criterion, "label_smoothing", 0.0)
            and getattr(criterion, "ignore_index", -100) == -100)


def _default_weight_decay(net) -> float:
    params = net.get_params(deep=False)
    decay = params.get("optimizer__weight_decay")
    optimizer = params.get("optimizer")
    if optimizer is torch.optim.AdamW:
        warnings.warn(
            "AdamW's decoupled weight decay is not an L2 penalty of the training objective; "
            "influence uses weight_decay=optimizer__weight_decay or 0 unless you pass "
            "influence__weight_decay.",
            UserWarning,
            stacklevel=4,
        )
    return float(decay) if decay is not None else 0.0


def _check_trained_on_all_rows(net) -> None:
    if getattr(net, "train_split", None) is not None:
        raise ValueError(
            "This net holds out a validation split (train_split is not None), so it was not "
            "trained on all the rows it was given; influence refers to training rows. "
            "Construct it with train_split=None."
        )


def _influence_for(net, X, y, **options) -> TorchInfluence:
    _check_trained_on_all_rows(net)
    settings = {"weight_decay": _default_weight_decay(net)}
    settings.update(options)
    unknown = set(settings) - set(_OPTION_NAMES)
    if unknown:
        raise TypeError(f"Unknown influence option(s) {sorted(unknown)}; "
                        f"options are {_OPTION_NAMES}.")
    if isinstance(y, (np.ndarray, torch.Tensor)) and isinstance(
            net, (_skorch.NeuralNetBinaryClassifier, _skorch.NeuralNetRegressor)):
        y = torch.as_tensor(np.asarray(y) if isinstance(y, np.ndarray) else y)
        y = y.to(_module_dtype(net.module_))
    return TorchInfluence(net.module_, skorch_loss(net), **settings).fit(X, y)


def _module_dtype(module) -> torch.dtype:
    return next(p.dtype for p in module.parameters() if p.is_floating_point())


class InfluenceNetMixin:
    """Influence methods for a skorch net; put it first among the bases.

    ``fit`` keeps the training data; the first influence call builds a
    :class:`~skinfluence.torch.TorchInfluence` (options from the ``influence__``
    parameters, overridden by keywords) and caches it until the net is refitted.
    """

    prefixes_ = [*_skorch.NeuralNet.prefixes_, "influence"]

    def fit(self, X, y=None, **fit_params):
        super().fit(X, y, **fit_params)
        self._influence_data = (X, y)
        self._influence_cache = {}
        return self

    def influence_explainer(self, **options) -> TorchInfluence:
        """The fitted :class:`~skinfluence.torch.TorchInfluence` of this net."""
        data = getattr(self, "_influence_data", None)
        if data is None or not hasattr(self, "module_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(f"This {type(self).__name__} is not fitted yet.")
        settings = {**self.get_params_for("influence"), **options}
        key = repr(sorted(settings.items()))
        cache = self.__dict__.setdefault("_influence_cache", {})
        if key not in cache:
            cache.clear()
            cache[key] = _influence_for(self, *data, **settings)
        return cache[key]

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_influence_cache", None)
        return state

    def influence(self, X_test, y_test, *, train_indices=None, **options) -> np.ndarray:
        """``I_up,loss`` of every training row on every test point, (n_rows, n_test)."""
        return self.influence_explainer(**options).influence(
            X_test, y_test, train_indices=train_indices)

    def loo_effect(self, X_test, y_test, *, method="influence", train_indices=None,
                   **options) -> np.ndarray:
        """Predicted change in each test loss when each training row is removed."""
        return self.influence_explainer(**options).loo_effect(
            X_test, y_test, method=method, train_indices=train_indices)

    def self_influence(self, *, train_indices=None, **options) -> np.ndarray:
        """``I_up,loss(z_i, z_i)`` of each training row, (n_rows,)."""
        return self.influence_explainer(**options).self_influence(train_indices=train_indices)

    def self_loo_effect(self, *, method="influence", train_indices=None, **options):
        """Predicted increase of each row's own loss when it is removed, (n_rows,)."""
        return self.influence_explainer(**options).self_loo_effect(
            method=method, train_indices=train_indices)

    def perturbation_influence(self, X_test, y_test, *, train_indices=None, aggregate=None,
                               **options) -> np.ndarray:
        """``I_pert,loss``: gradient of test losses in the training inputs."""
        return self.influence_explainer(**options).perturbation_influence(
            X_test, y_test, train_indices=train_indices, aggregate=aggregate)

    def rank_training_points(self, X_test=None, y_test=None, *, kind=None, top_k=10,
                             method="influence", return_scores=False, **options):
        """Training rows ordered by their effect on test points, or on themselves."""
        return self.influence_explainer(**options).rank_training_points(
            X_test, y_test, kind=kind, top_k=top_k, method=method,
            return_scores=return_scores)


class NeuralNetClassifier(InfluenceNetMixin, _skorch.NeuralNetClassifier):
    """skorch's ``NeuralNetClassifier`` with influence methods (see the module docs)."""


class NeuralNetBinaryClassifier(InfluenceNetMixin, _skorch.NeuralNetBinaryClassifier):
    """skorch's ``NeuralNetBinaryClassifier`` with influence methods."""


class NeuralNetRegressor(InfluenceNetMixin, _skorch.NeuralNetRegressor):
    """skorch's ``NeuralNetRegressor`` with influence methods."""


class PipelineInfluence:
    """A fitted :class:`~skinfluence.torch.TorchInfluence` behind a pipeline's transformers.

    Test inputs go through the transformers first; ``perturbation_influence`` is the
    gradient in the *net's* inputs (after the transformers).
    """

    def __init__(self, transform, explainer: TorchInfluence):
        self.transform = transform
        self.explainer = explainer

    def _x(self, X):
        return X if self.transform is None else self.transform(X)

    def influence(self, X_test, y_test, **kwargs):
        return self.explainer.influence(self._x(X_test), y_test, **kwargs)

    def loo_effect(self, X_test, y_test, **kwargs):
        return self.explainer.loo_effect(self._x(X_test), y_test, **kwargs)

    def perturbation_influence(self, X_test, y_test, **kwargs):
        return self.explainer.perturbation_influence(self._x(X_test), y_test, **kwargs)

    def test_loss(self, X_test, y_test):
        return self.explainer.test_loss(self._x(X_test), y_test)

    def self_influence(self, **kwargs):
        return self.explainer.self_influence(**kwargs)

    def self_loo_effect(self, **kwargs):
        return self.explainer.self_loo_effect(**kwargs)

    def rank_training_points(self, X_test=None, y_test=None, **kwargs):
        X = None if X_test is None else self._x(X_test)
        return self.explainer.rank_training_points(X, y_test, **kwargs)


def explain_skorch(estimator, X, y, **options):
    """Influence of a fitted skorch net (or a pipeline ending in one), without refitting.

    Parameters
    ----------
    estimator : fitted skorch net, or sklearn Pipeline whose last step is one
    X, y : the data it was fitted on (raw, before the pipeline's transformers)
    **options
        :class:`~skinfluence.torch.TorchInfluence` options (``damping``, ``params``,
        ``weight_decay``, ``solver``...).

    Returns
    -------
    TorchInfluence, or for a pipeline an object with the same methods taking raw inputs.
    """
    from sklearn.pipeline import Pipeline

    if isinstance(estimator, Pipeline):
        transformers, net = estimator[:-1], estimator[-1]
        explainer = explain_skorch(net, transformers.transform(X), y, **options)
        return PipelineInfluence(transformers.transform, explainer)
    if not isinstance(estimator, _skorch.NeuralNet):
        raise TypeError(f"explain_skorch needs a skorch net, got {type(estimator).__name__}.")
    if not hasattr(estimator, "module_"):
        from sklearn.exceptions import NotFittedError

        raise NotFittedError("The skorch net is not fitted (no module_).")
    return _influence_for(estimator, X, y, **options)

"""``InfluenceMixin``: influence methods for any estimator that can name its objective."""

from __future__ import annotations

import hashlib

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._influence import Influence

__all__ = ["InfluenceMixin"]

_ENGINE_OPTIONS = (
    "solver", "damping", "solver_options", "n_jobs", "working_memory",
    "convergence_tol", "random_state",
)


class InfluenceMixin:
    """Adds Koh & Liang's influence functions to a scikit-learn estimator.

    Put it first among the bases, before the estimator class::

        class MyModel(InfluenceMixin, SomeSklearnEstimator):
            def _influence_objective(self, X, y, sample_weight):
                return GLMObjective(loss, LinearDesign(X), y_encoded, theta, penalty=...)

    ``fit`` keeps a reference to the (validated) training data; every influence
    method then builds the estimator's objective once and caches the factorization
    of its Hessian until the estimator is refitted.

    All methods accept the engine options of :class:`~skinfluence.Influence` as
    keywords: ``solver`` (``"auto"``, ``"direct"``, ``"cg"``, ``"lissa"``,
    ``"woodbury"``), ``damping``, ``solver_options``, ``n_jobs``, ``working_memory``,
    ``convergence_tol`` and ``random_state``.
    """

    # ------------------------------------------------------------------ plumbing
    def _influence_objective(self, X, y, sample_weight):
        """Return the :class:`~skinfluence.objective.GLMObjective` at this fit."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement _influence_objective(X, y, sample_weight)."
        )

    def fit(self, X, y, sample_weight=None, **fit_params):
        """Fit the estimator and keep its training data for influence computations.

        Parameters are those of the underlying estimator's ``fit``.

        Returns
        -------
        self : object
        """
        if sample_weight is None:
            super().fit(X, y, **fit_params)
        else:
            super().fit(X, y, sample_weight=sample_weight, **fit_params)
        self._influence_data = (X, y, sample_weight)
        self._influence_engines = {}
        return self

    def _fit_fingerprint(self) -> str:
        digest = hashlib.sha1()
        # parameters can change the objective without a refit (an SVM's smoothing t)
        digest.update(repr(sorted(self.get_params(deep=False).items())).encode())
        for name in ("coef_", "intercept_", "dual_coef_"):
            value = getattr(self, name, None)
            if value is not None:
                arr = value.toarray() if hasattr(value, "toarray") else np.asarray(value)
                digest.update(np.ascontiguousarray(arr).tobytes())
        return digest.hexdigest()

    def influence_explainer(self, **options) -> Influence:
        """The cached :class:`~skinfluence.Influence` engine of this fit.

        Parameters
        ----------
        **options
            Engine options (``solver``, ``damping``, ``solver_options``, ``n_jobs``,
            ``working_memory``, ``convergence_tol``, ``random_state``).

        Returns
        -------
        Influence
        """
        check_is_fitted(self)
        unknown = set(options) - set(_ENGINE_OPTIONS)
        if unknown:
            raise TypeError(
                f"Unknown option(s) {sorted(unknown)}; engine options are {_ENGINE_OPTIONS}."
            )
        data = getattr(self, "_influence_data", None)
        if data is None:
            raise ValueError(
                f"This {type(self).__name__} has no training data to explain: it was not "
                "fitted with skinfluence's fit. Use skinfluence.explain(estimator, X, y)."
            )
        engines = self.__dict__.setdefault("_influence_engines", {})
        # the factorization depends on the fit; the cheap per-call options don't
        fit_key = (self._fit_fingerprint(), options.get("solver", "auto"),
                   options.get("damping", 0.0), repr(options.get("solver_options")),
                   options.get("random_state"))
        engine = engines.get(fit_key)
        if engine is None:
            engines.clear()
            engine = Influence(self._influence_objective(*data), **options)
            engines[fit_key] = engine
        else:
            for name in ("n_jobs", "working_memory", "convergence_tol"):
                if name in options:
                    setattr(engine, name, options[name])
        return engine

    def __getstate__(self):
        state = super().__getstate__() if hasattr(super(), "__getstate__") else dict(
            self.__dict__)
        state = dict(state)
        # the factorization is a cache: rebuilt on demand after unpickling
        state.pop("_influence_engines", None)
        return state

    # ------------------------------------------------------------------ public API
    def influence(self, X_test, y_test, *, train_indices=None, **options) -> np.ndarray:
        """Koh & Liang's ``I_up,loss`` of every training row on every test point.

        Parameters
        ----------
        X_test : array-like or sparse matrix of shape (n_test, n_features)
        y_test : array-like of shape (n_test,)
        train_indices : array-like of int or bool, default=None
            Training rows to return (all when None).
        **options
            Engine options, see :class:`~skinfluence.Influence`.

        Returns
        -------
        ndarray of shape (n_rows, n_test)
            ``-n s_i g_t^T H^-1 g_i`` with ``H`` the Hessian of the estimator's own
            objective.  Removing row ``i`` changes the loss at ``t`` by about
            ``-influence[i, t] / n_train``: positive values are harmful rows.
        """
        return self.influence_explainer(**options).influence(
            X_test, y_test, train_indices=train_indices)

    def loo_effect(self, X_test, y_test, *, method="influence", train_indices=None,
                   **options) -> np.ndarray:
        """Predicted change in each test loss when each training row is removed.

        Parameters
        ----------
        X_test, y_test : test data
        method : {"influence", "newton"}, default="influence"
            ``"influence"`` is the paper's first order ``-influence / n_train``;
            ``"newton"`` one exact Newton step without the row, then the exact test loss.
        train_indices : array-like, default=None
        **options
            Engine options, see :class:`~skinfluence.Influence`.

        Returns
        -------
        ndarray of shape (n_rows, n_test)
        """
        return self.influence_explainer(**options).loo_effect(
            X_test, y_test, method=method, train_indices=train_indices)

    def self_influence(self, *, train_indices=None, **options) -> np.ndarray:
        """``I_up,loss(z_i, z_i)`` of each training row (non-positive), shape (n_rows,)."""
        return self.influence_explainer(**options).self_influence(train_indices=train_indices)

    def influence_params(self, train_indices=None, **options) -> np.ndarray:
        """``I_up,params = -n s_i H^-1 g_i`` for training rows, (n_rows, n_params).

        Flat, output-major layout ``[coef_[k], intercept_[k]]`` per output ``k``; use
        :meth:`Influence.params_to_estimator` to reshape.
        """
        return self.influence_explainer(**options).influence_params(train_indices)

    def loo_params(self, train_indices=None, *, method="influence", **options):
        """Predicted ``(delta_coef, delta_intercept)`` when each row is removed.

        Returns
        -------
        delta_coef : ndarray of shape ``(n_rows,) + coef_.shape``
        delta_intercept : ndarray of shape ``(n_rows,) + intercept_.shape``
        """
        engine = self.influence_explainer(**options)
        return engine.params_to_estimator(engine.loo_params(train_indices, method=method))

    def perturbation_influence(self, X_test, y_test, *, train_indices=None, aggregate=None,
                               **options) -> np.ndarray:
        """Koh & Liang's ``I_pert,loss``: gradient of test losses in training features.

        Moving training row ``i`` by a small ``delta`` changes the loss at ``t`` by
        about ``result[i, t] @ delta / n_train``.

        Parameters
        ----------
        X_test, y_test : test data
        train_indices : array-like, default=None
        aggregate : {None, "sum", "mean"}, default=None
            Reduce over test points.
        **options
            Engine options.

        Returns
        -------
        ndarray of shape (n_rows, n_test, n_features) or (n_rows, n_features)
        """
        return self.influence_explainer(**options).perturbation_influence(
            X_test, y_test, train_indices=train_indices, aggregate=aggregate)

    def edit_effect(self, train_indices, X_test, y_test, *, X_new=None, y_new=None,
                    method="influence", **options) -> np.ndarray:
        """Predicted change in test losses when rows are edited (flipped label, new row).

        See :meth:`Influence.edit_effect`.  Returns (n_edits, n_test).
        """
        return self.influence_explainer(**options).edit_effect(
            train_indices, X_test, y_test, X_new=X_new, y_new=y_new, method=method)

    def group_effect(self, groups, X_test, y_test, *, method="influence",
                     **options) -> np.ndarray:
        """Predicted change in test losses when whole groups of rows are removed.

        See :meth:`Influence.group_effect`.  Returns (n_groups, n_test).
        """
        return self.influence_explainer(**options).group_effect(
            groups, X_test, y_test, method=method)

    def self_loo_effect(self, *, method="influence", train_indices=None, **options):
        """Predicted increase of each row's own loss when it is removed, (n_rows,)."""
        return self.influence_explainer(**options).self_loo_effect(
            method=method, train_indices=train_indices)

    def rank_training_points(self, X_test=None, y_test=None, *, kind=None, top_k=10,
                             method="influence", return_scores=False, **options):
        """Training rows ordered by their effect on test points, or on themselves.

        Without test data the ranking is by self-influence (the paper's mislabel
        search).  See :meth:`Influence.rank_training_points` for ``kind``.

        Returns
        -------
        indices : ndarray of shape (top_k,)
        scores : ndarray of shape (top_k,), when ``return_scores``
        """
        return self.influence_explainer(**options).rank_training_points(
            X_test, y_test, kind=kind, top_k=top_k, method=method,
            return_scores=return_scores)

"""Approximate leave-one-out cross-validation at the cost of one fit per candidate."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.model_selection import ParameterGrid
from sklearn.model_selection._search import BaseSearchCV
from sklearn.utils._param_validation import HasMethods, StrOptions
from sklearn.utils.validation import _num_samples

from .metrics import _influence_step, loo_scorer

__all__ = ["LOOSearchCV"]


class _EveryRow:
    """A one-split "cross-validator": fit on every row, hand every row to the scorer.

    The LOO scorer ignores the rows it is given: the leave-one-out predictions come from
    the fit itself.
    """

    def split(self, X, y=None, groups=None):
        rows = np.arange(_num_samples(X))
        yield rows, rows

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return 1

    def __repr__(self) -> str:
        return "EveryRow()"


class LOOSearchCV(BaseSearchCV):
    """Grid search scored by approximate leave-one-out loss: one fit per candidate.

    Each candidate is fitted once on all the data and scored by minus its one-step
    Newton leave-one-out loss (:data:`skinfluence.metrics.loo_scorer`): every row's loss
    under the model refitted without it, to one exact Newton step of the candidate's
    own objective, as :class:`~sklearn.linear_model.RidgeCV` does exactly for ridge.
    Exact leave-one-out cross-validation needs ``n`` fits per candidate.

    The interface is :class:`~sklearn.model_selection.GridSearchCV`'s: ``best_params_``,
    ``best_estimator_``, ``best_score_``, ``best_index_``, ``cv_results_`` (one
    "split"), ``refit``, and ``predict``/``score`` delegating to the refitted best
    estimator.

    Parameters
    ----------
    estimator : estimator
        Carrying :class:`~skinfluence.InfluenceMixin`, or a
        :class:`~skinfluence.pipeline.Pipeline` (or scikit-learn pipeline) ending with
        one.  Fit it tightly (e.g. ``tol=1e-8``): the Newton step starts from the fit.
    param_grid : dict or list of dicts
        As for :class:`~sklearn.model_selection.GridSearchCV`.
    n_jobs : int, default=None
        Candidates fitted in parallel.
    refit : bool or callable, default=True
        Refit the best candidate on the whole data (``best_estimator_``).
    verbose : int, default=0
    pre_dispatch : int or str, default="2*n_jobs"
    error_score : "raise" or float, default=np.nan
        Score of a candidate whose fit fails.

    Attributes
    ----------
    cv_results_ : dict of numpy arrays
        GridSearchCV's layout; ``mean_test_score`` is minus the approximate LOO loss.
    best_estimator_ : estimator
    best_score_ : float
        Minus the best candidate's approximate leave-one-out loss.
    best_params_ : dict
    best_index_ : int
    scorer_ : callable
    n_splits_ : int
        Always 1.
    refit_time_ : float

    See Also
    --------
    skinfluence.metrics.loo_scorer : The score, usable in any scikit-learn search.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skinfluence.linear_model import LogisticRegression
    >>> from skinfluence.model_selection import LOOSearchCV
    >>> from skinfluence.pipeline import make_pipeline
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> pipe = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-8))
    >>> search = LOOSearchCV(pipe, {"logisticregression__C": [0.01, 0.1, 1.0]}).fit(X, y)
    >>> sorted(search.best_params_)
    ['logisticregression__C']
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit"])],
        "param_grid": [dict, list],
        "n_jobs": [numbers.Integral, None],
        "refit": ["boolean", callable],
        "verbose": ["verbose"],
        "pre_dispatch": [numbers.Integral, str],
        "error_score": [StrOptions({"raise"}), numbers.Real],
    }

    def __init__(self, estimator, param_grid, *, n_jobs=None, refit=True, verbose=0,
                 pre_dispatch="2*n_jobs", error_score=np.nan):
        self.estimator = estimator
        self.param_grid = param_grid
        self.n_jobs = n_jobs
        self.refit = refit
        self.verbose = verbose
        self.pre_dispatch = pre_dispatch
        self.error_score = error_score

    # what BaseSearchCV reads; fixed by design, so not parameters
    @property
    def scoring(self):
        return loo_scorer

    @property
    def cv(self):
        return _EveryRow()

    @property
    def return_train_score(self) -> bool:
        return False

    def _run_search(self, evaluate_candidates) -> None:
        evaluate_candidates(ParameterGrid(self.param_grid))

    def fit(self, X, y=None, **params):
        """Fit and score every candidate once; refit the best.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        **params : dict
            Passed to the estimator's ``fit`` (e.g. ``sample_weight``, or
            ``step__sample_weight`` for a pipeline).

        Returns
        -------
        self : LOOSearchCV
        """
        # fail before fitting anything: every candidate would score NaN otherwise
        _influence_step(self.estimator)
        return super().fit(X, y, **params)

"""skinfluence: influence functions for scikit-learn models (Koh & Liang, ICML 2017).

Which training rows made my model say this?  Drop-in estimators
(:mod:`skinfluence.linear_model`) and :func:`explain` for models fitted elsewhere
answer with the paper's influence functions, computed on the objective the estimator
actually minimized and validated against leave-one-out retraining
(:mod:`skinfluence.validation`).
"""

from ._adapters import explain, register_objective
from ._influence import Influence
from .mixin import InfluenceMixin

# importing the estimator modules registers their builders with explain()
from . import kernel_model, kernel_ridge, linear_model, svm  # noqa: E402,F401  (isort: skip)

__version__ = "0.1.0"

__all__ = ["Influence", "InfluenceMixin", "explain", "register_objective", "__version__"]

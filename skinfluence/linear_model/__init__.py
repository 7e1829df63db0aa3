"""Linear models with influence functions (drop-in scikit-learn subclasses)."""

from ._logistic import LogisticRegression
from ._ridge import LinearRegression, RegressionInfluence, Ridge, ridge_objective

__all__ = ["LogisticRegression", "Ridge", "LinearRegression", "RegressionInfluence", "ridge_objective"]

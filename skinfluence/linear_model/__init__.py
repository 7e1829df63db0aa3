"""Linear models with influence functions (drop-in scikit-learn subclasses)."""

from ._logistic import LogisticRegression

__all__ = ["LogisticRegression"]

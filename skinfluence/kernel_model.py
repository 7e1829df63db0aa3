"""Kernel classifiers that scikit-learn does not have, with influence functions.

- :class:`KernelLogisticRegression`: ``C sum_i s_i logloss_i + 0.5 ||f||_H^2``;
- :class:`KernelSmoothHingeClassifier`: the same with the smooth hinge (also in
  :mod:`skinfluence.svm`).

Both are fitted on the objective their influence is computed on, as linear models on
an exact or Nystroem kernel map (see :mod:`skinfluence._kernel`).
"""

from ._kernel_estimators import (
    KernelLogisticRegression,
    KernelSmoothHingeClassifier,
    kernel_classifier_objective,
)

__all__ = ["KernelLogisticRegression", "KernelSmoothHingeClassifier", "kernel_classifier_objective"]

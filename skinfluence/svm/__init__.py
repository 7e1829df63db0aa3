"""Support vector machines with influence functions.

- :class:`LinearSVC`: scikit-learn's (liblinear), influence on its own objective with
  the smooth hinge's derivatives for ``loss="hinge"`` (Koh & Liang, Section 4.1);
- :class:`SVC`: scikit-learn's kernel SVM (libsvm, binary), the same on the RKHS
  objective ``0.5 ||f||^2 + C sum_i C_i hinge_i``;
- :class:`SmoothHingeClassifier` and :class:`KernelSmoothHingeClassifier`: SVMs
  trained directly on the smooth hinge, so that the loss and its influence agree.

Importing this module registers the builders that let :func:`skinfluence.explain`
explain plain ``sklearn.svm.LinearSVC`` and ``sklearn.svm.SVC`` fits.
"""

from .._kernel_estimators import KernelSmoothHingeClassifier
from ._kernel import SVC, svc_objective
from ._linear import (
    LinearSVC,
    SmoothHingeClassifier,
    linear_svc_objective,
    smooth_hinge_classifier_objective,
)

__all__ = [
    "SVC",
    "svc_objective",
    "LinearSVC",
    "SmoothHingeClassifier",
    "KernelSmoothHingeClassifier",
    "linear_svc_objective",
    "smooth_hinge_classifier_objective",
]

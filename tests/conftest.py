"""Shared fixtures: small real datasets (bundled with scikit-learn) and the shared data."""

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.preprocessing import StandardScaler

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _split(X, y, n_train, seed=0):
    rng = np.random.RandomState(seed)
    perm = rng.permutation(len(y))
    X, y = X[perm], y[perm]
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


@pytest.fixture(scope="session")
def cancer():
    """Binary, real: breast cancer, standardized; 300 train rows."""
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    return _split(X, y, 300)


@pytest.fixture(scope="session")
def wine():
    """Three classes, real: wine, standardized; 120 train rows."""
    X, y = load_wine(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    return _split(X, y, 120)


@pytest.fixture(scope="session")
def digits():
    """Ten classes, real: 8x8 digits scaled to [0, 1]; 500 train rows."""
    X, y = load_digits(return_X_y=True)
    return _split(X / 16.0, y, 500)


def shared_data(*parts) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not found at {path}")
    return path


# property-based tests (tests/test_properties.py, tests/test_bad_input.py): the same
# examples on every run unless HYPOTHESIS_PROFILE=explore draws new ones
import os  # noqa: E402

from hypothesis import settings  # noqa: E402

settings.register_profile("default", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

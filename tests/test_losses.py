"""Loss derivatives against central finite differences."""

import numpy as np
import pytest

from skinfluence.losses import BinaryLogistic, SmoothHinge, SoftmaxCrossEntropy, SquaredError

rng = np.random.RandomState(0)
N = 7


def _cases():
    yield BinaryLogistic(), rng.randint(0, 2, N).astype(float), rng.randn(N, 1) * 3
    yield SoftmaxCrossEntropy(), rng.randint(0, 4, N), rng.randn(N, 4) * 2
    yield SmoothHinge(0.5), rng.choice([-1.0, 1.0], N), rng.randn(N, 1) * 2
    yield SmoothHinge(0.05), rng.choice([-1.0, 1.0], N), rng.randn(N, 1) * 2
    yield SquaredError(), rng.randn(N, 2), rng.randn(N, 2)


@pytest.mark.parametrize("loss, y, raw", list(_cases()), ids=lambda v: repr(v)[:20])
def test_derivatives_match_finite_differences(loss, y, raw):
    eps = 1e-6
    grad = loss.gradient(y, raw)
    hess = loss.hessian(y, raw)
    K = raw.shape[1]
    assert grad.shape == (N, K) and hess.shape == (N, K, K)
    for k in range(K):
        step = np.zeros_like(raw)
        step[:, k] = eps
        fd_grad = (loss.value(y, raw + step) - loss.value(y, raw - step)) / (2 * eps)
        np.testing.assert_allclose(grad[:, k], fd_grad, rtol=1e-6, atol=1e-8)
        fd_hess = (loss.gradient(y, raw + step) - loss.gradient(y, raw - step)) / (2 * eps)
        np.testing.assert_allclose(hess[:, :, k], fd_hess, rtol=1e-5, atol=1e-7)


def test_smooth_hinge_tends_to_hinge():
    y = np.array([1.0, -1.0, 1.0, -1.0])
    raw = np.array([[0.3], [0.3], [2.0], [-4.0]])
    hinge = np.maximum(0, 1 - y * raw[:, 0])
    np.testing.assert_allclose(SmoothHinge(0.0).value(y, raw), hinge)
    np.testing.assert_allclose(SmoothHinge(1e-4).value(y, raw), hinge, atol=1e-4)
    assert np.all(SmoothHinge(0.0).hessian(y, raw) == 0)


def test_logistic_is_stable_for_huge_logits():
    loss = BinaryLogistic()
    raw = np.array([[800.0], [-800.0]])
    values = loss.value(np.array([0.0, 1.0]), raw)
    np.testing.assert_allclose(values, [800.0, 800.0])
    assert np.all(np.isfinite(loss.hessian(np.array([0.0, 1.0]), raw)))


def test_smooth_hinge_rejects_negative_t():
    with pytest.raises(ValueError, match="t >= 0"):
        SmoothHinge(-1.0)

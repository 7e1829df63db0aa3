"""Training-set attacks (paper Section 5.2) on real images: scikit-learn's 8x8 digits.

The oracle is retraining: the attack's step direction must raise the target loss that a
retrained model actually has, by the amount ``I_pert,loss @ delta / n`` predicts for a
small step, and the attack must flip real predictions within a few steps while every
attacked row stays a valid image (in the box, within the budget, on the 17-level grid of
the digits' intensities 0..16).
"""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from skinfluence.attack import AttackResult, project_rows, training_set_attack
from skinfluence.linear_model import LogisticRegression

FIT = dict(C=1.0, tol=1e-10, max_iter=5000, solver="newton-cholesky")


@pytest.fixture(scope="module")
def threes_and_eights():
    """Digits 3 vs 8 (the hardest pair for a linear model), raw intensities 0..16."""
    X, y = load_digits(return_X_y=True)
    keep = np.isin(y, [3, 8])
    X, y = X[keep], y[keep]
    perm = np.random.RandomState(0).permutation(len(y))
    X, y = X[perm], y[perm]
    return X[:200], y[:200], X[200:], y[200:]


@pytest.fixture(scope="module")
def fitted(threes_and_eights):
    X, y, _, _ = threes_and_eights
    return LogisticRegression(**FIT).fit(X, y)


def test_project_rows_box_budget_and_grid():
    rng = np.random.RandomState(0)
    original = rng.randint(0, 17, size=(3, 64)).astype(float)
    wild = original + rng.normal(scale=6.0, size=original.shape)
    out = project_rows(wild, original, bounds=(0, 16), epsilon=3.5, grid=1.0)
    assert np.all((out >= 0) & (out <= 16))
    assert np.all(np.abs(out - original) <= 3.5)
    np.testing.assert_array_equal(out, np.round(out))
    # an 8-bit grid in [0, 1]: the top value 1.0 is a grid point despite rounding
    pixels = rng.randint(0, 256, size=(2, 10)) / 255.0
    moved = project_rows(pixels + 0.3, pixels, bounds=(0.0, 1.0), epsilon=8 / 255, grid=1 / 255)
    np.testing.assert_allclose(moved * 255, np.round(moved * 255), atol=1e-9)
    assert np.all(moved <= 1.0) and np.all(moved - pixels <= 8 / 255 + 1e-12)
    # rows already valid are left alone
    np.testing.assert_array_equal(project_rows(original, original, bounds=(0, 16), grid=1.0),
                                  original)


def test_one_small_step_changes_the_retrained_loss_as_predicted(threes_and_eights, fitted):
    """First order, against retraining: delta loss ~= I_pert,loss . delta / n."""
    X, y, Xt, yt = threes_and_eights
    # a test point near the boundary and the row that moves its loss most: changes far
    # above the refit tolerance
    losses = fitted.influence_explainer().test_loss(Xt, yt)
    target = int(np.argmax(np.where(fitted.predict(Xt) == yt, losses, -np.inf)))
    x_t, y_t = Xt[target:target + 1], yt[target:target + 1]
    row = int(np.argmax(np.abs(fitted.perturbation_influence(x_t, y_t)[:, 0]).sum(1)))
    result = training_set_attack(fitted, X, y, x_t, y_t, train_indices=[row], step_size=0.05,
                                 n_steps=1)
    grad = fitted.perturbation_influence(x_t, y_t, train_indices=[row])[0, 0]
    predicted = grad @ result.perturbation[0] / len(y)
    actual = result.target_loss[1] - result.target_loss[0]
    assert predicted > 0  # a sign step goes uphill
    assert actual == pytest.approx(predicted, rel=0.1)
    # the step is the sign of the gradient, scaled
    np.testing.assert_allclose(result.perturbation[0], 0.05 * np.sign(grad))


def test_attack_flips_digits_within_a_few_steps_and_stays_valid(threes_and_eights, fitted):
    X, y, Xt, yt = threes_and_eights
    X_before = X.copy()
    correct = np.flatnonzero(fitted.predict(Xt) == yt)
    targets = np.random.RandomState(1).choice(correct, 5, replace=False)
    results = [
        training_set_attack(fitted, X, y, Xt[t:t + 1], yt[t:t + 1], n_rows=1, step_size=1.0,
                            n_steps=10, epsilon=8.0, bounds=(0, 16), grid=1.0)
        for t in targets
    ]
    assert all(isinstance(r, AttackResult) for r in results)
    for r in results:
        assert r.target_loss[-1] > r.target_loss[0]  # the attack raises the target loss
        attacked = r.X_attacked
        assert np.all((attacked >= 0) & (attacked <= 16))
        np.testing.assert_array_equal(attacked, np.round(attacked))
        assert np.abs(r.perturbation).max() <= 8
        # the model it reports is the one retrained on the attacked rows
        X_attacked = X.copy()
        X_attacked[r.train_indices] = attacked
        refit = LogisticRegression(**FIT).fit(X_attacked, y)
        np.testing.assert_array_equal(refit.predict(Xt), r.estimator.predict(Xt))
    flipped = [r for r in results if r.n_flipped]
    assert flipped, "no prediction flipped in 10 steps on any of 5 targets"
    for r in flipped:
        assert r.predictions_after[0] != r.predictions_before[0]
        assert r.n_steps <= 10 and r.fraction_flipped == 1.0
    np.testing.assert_array_equal(X, X_before)  # the caller's data is untouched


def test_rows_default_to_the_largest_l1_gradient(threes_and_eights, fitted):
    X, y, Xt, yt = threes_and_eights
    grad = fitted.perturbation_influence(Xt[:3], yt[:3], aggregate="mean")
    result = training_set_attack(fitted, X, y, Xt[:3], yt[:3], n_rows=2, n_steps=1,
                                 bounds=(0, 16), grid=1.0)
    np.testing.assert_array_equal(result.train_indices, np.argsort(-np.abs(grad).sum(1))[:2])
    assert result.flipped.shape == (3,)


def test_works_with_a_plain_scikit_learn_model(threes_and_eights):
    from sklearn.linear_model import LogisticRegression as SkLogisticRegression

    X, y, Xt, yt = threes_and_eights
    plain = SkLogisticRegression(**FIT)  # unfitted: the attack fits it first
    result = training_set_attack(plain, X, y, Xt[:1], yt[:1], train_indices=[0, 1],
                                 n_steps=2, bounds=(0, 16), grid=1.0)
    assert result.target_loss[-1] > result.target_loss[0]
    assert not hasattr(plain, "coef_")


@pytest.mark.parametrize("kwargs, message", [
    (dict(step_size=0.2, grid=1.0), "half the grid"),
    (dict(n_steps=0), "n_steps"),
    (dict(step_size=-1.0), "step_size"),
    (dict(epsilon=-1.0), "epsilon"),
    (dict(train_indices=[10_000]), "train_indices"),
])
def test_bad_options_are_refused(threes_and_eights, fitted, kwargs, message):
    X, y, Xt, yt = threes_and_eights
    with pytest.raises(ValueError, match=message):
        training_set_attack(fitted, X, y, Xt[:1], yt[:1], **kwargs)


def test_bad_target_shapes_are_refused(threes_and_eights, fitted):
    X, y, Xt, yt = threes_and_eights
    with pytest.raises(ValueError, match="X_target"):
        training_set_attack(fitted, X, y, Xt[:1, :10], yt[:1])
    with pytest.raises(ValueError, match="y_target"):
        training_set_attack(fitted, X, y, Xt[:2], yt[:1])


def test_inputs_it_cannot_attack_are_refused(threes_and_eights, fitted):
    import scipy.sparse as sp
    from sklearn.pipeline import make_pipeline as sk_make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y, Xt, yt = threes_and_eights
    with pytest.raises(ValueError, match="dense"):
        training_set_attack(fitted, sp.csr_matrix(X), y, Xt[:1], yt[:1])
    plain = sk_make_pipeline(StandardScaler(), LogisticRegression(**FIT)).fit(X, y)
    with pytest.raises(TypeError, match="skinfluence.pipeline"):
        training_set_attack(plain, X, y, Xt[:1], yt[:1])


def test_a_skinfluence_pipeline_is_attacked_in_raw_units(threes_and_eights):
    from sklearn.preprocessing import StandardScaler

    from skinfluence.pipeline import make_pipeline

    X, y, Xt, yt = threes_and_eights
    pipe = make_pipeline(StandardScaler(), LogisticRegression(**FIT)).fit(X, y)
    result = training_set_attack(pipe, X, y, Xt[:1], yt[:1], train_indices=[3], n_steps=2,
                                 bounds=(0, 16), grid=1.0)
    assert result.target_loss[-1] > result.target_loss[0]
    # steps are whole intensity levels of the raw image, not standardized units
    np.testing.assert_array_equal(result.perturbation, np.round(result.perturbation))

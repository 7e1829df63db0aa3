"""
Smooth hinge vs hinge: influence on a linear SVM (MNIST 1 vs 7)
===============================================================

The hinge loss has no second derivative at the margin, so the influence function of a
hinge-loss SVM is not defined.  Koh & Liang (2017, Fig. 3) take the SVM's own weights and
differentiate a smooth stand-in, ``SmoothHinge(s, t) = t log(1 + exp((1 - s) / t))``,
which tends to the hinge as the temperature ``t`` goes to 0.  The influence it predicts
matches what leave-one-out retraining of the *hinge* SVM does; the raw hinge's own
derivatives (``t = 0``: only the rows exactly on the margin carry curvature) badly
overestimate it.

Here: :class:`skinfluence.svm.LinearSVC` (scikit-learn's, hinge loss, liblinear) on 5,000
MNIST images of ones and sevens (``../shared/data/mnist``), ``lambda = 1 / (C n) =
0.01`` as in the paper, the test image with the largest hinge loss, and the 100 training
images with the largest predicted effect at ``t = 0.001`` (the paper's setup), each removed and the SVM
refitted (liblinear at ``tol=1e-10``).  ``tests/test_paper_svm.py`` (slow suite) repeats
this on other random draws of the 5,000 rows; the docs page *SVMs and kernel models* says when
influence on an SVM can be trusted.
"""

# %%
# Fit a hinge-loss SVM and pick the most wrongly classified test image
# ----------------------------------------------------------------------
import matplotlib.pyplot as plt
import numpy as np

from skinfluence.datasets import load_mnist
from skinfluence.display import LeaveOneOutDisplay
from skinfluence.svm import LinearSVC
from skinfluence.validation import loo_retrain

X_train, y_train, X_test, y_test = load_mnist(binary_digits=(1, 7))
rows = np.random.RandomState(0).choice(len(y_train), 5000, replace=False)
X, y = X_train[rows], y_train[rows]
svm = LinearSVC(loss="hinge", C=1.0 / (0.01 * len(y)), tol=1e-10, max_iter=1_000_000)
svm.fit(X, y)
signs = np.where(y_test == svm.classes_[1], 1.0, -1.0)
hinge = np.maximum(0.0, 1.0 - signs * svm.decision_function(X_test))
t_index = int(np.argmax(hinge))
x_t, y_t = X_test[t_index:t_index + 1], y_test[t_index:t_index + 1]
print(f"test accuracy {svm.score(X_test, y_test):.4f}; test image {t_index}: "
      f"label {y_t[0]}, hinge loss {hinge[t_index]:.2f}")

# %%
# Predicted leave-one-out change at each temperature
# --------------------------------------------------
# ``t`` is an estimator parameter: changing it does not refit, it only changes the loss
# whose derivatives influence uses (the fitted weights stay the SVM's).
temperatures = (0.001, 0.01, 0.1, 0.0)
predicted = {}
for t in temperatures:
    svm.set_params(t=t)
    predicted[t] = svm.loo_effect(x_t, y_t)[:, 0]

# %%
# Actual leave-one-out change, retraining the hinge SVM
# -----------------------------------------------------
top = np.argsort(-np.abs(predicted[0.001]))[:100]
actual = loo_retrain(svm, X, y, top, x_t, y_t, refit_params={"tol": 1e-10},
                     n_jobs=2).loss_change[:, 0]

fig, axes = plt.subplots(1, 4, figsize=(16, 4.2))
for ax, t in zip(axes, temperatures):
    display = LeaveOneOutDisplay.from_predictions(
        predicted[t][top], actual, train_indices=top, ax=ax,
        name="raw hinge" if t == 0 else f"t = {t}")
    scale = np.abs(predicted[t][top]).sum() / np.abs(actual).sum()
    ax.set_title(f"{'raw hinge' if t == 0 else f't = {t}'}: R = {display.pearson_r:.3f}, "
                 f"x{scale:.2f}")
    print(f"{'raw hinge' if t == 0 else f't = {t}':>10}: Pearson R {display.pearson_r:.3f}, "
          f"predicted / actual magnitude {scale:.2f}")
fig.suptitle("Linear SVM (hinge), MNIST 1 vs 7: predicted vs actual change in test loss")
fig.tight_layout()
plt.show()

# %%
# Small temperatures track retraining closely; at ``t = 0.1`` the smooth loss is too far
# from the hinge and the agreement drops; the raw hinge gives every row off the margin
# zero curvature, its Hessian is nearly singular, and it overestimates the effect of a
# removal many times over.

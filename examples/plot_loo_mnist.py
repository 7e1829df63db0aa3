"""
Influence vs leave-one-out retraining on MNIST
==============================================

Koh & Liang (2017, Fig. 2) check influence functions against the real thing: remove a
training image, retrain, and measure how the loss on a test image changes.  For logistic
regression on MNIST, the change influence predicts and the change retraining measures lie
on the diagonal.

This example uses MNIST (``../shared/data/mnist``) restricted to the digits 1 and 7 and
1,000 training images, so that retraining 40 models takes well under a minute; the
paper's ten-class version with 10,000 images is reproduced by
``tests/test_paper_mnist.py`` (slow suite).  The L2 strength is the paper's, 0.01 on the
mean loss (``C = 1 / (0.01 n)``).  Besides the paper's first-order estimate,
skinfluence offers one exact Newton step without the row (``method="newton"``), which is
closer still.
"""

# %%
# Fit, and pick the test image the model gets most wrong
# ------------------------------------------------------
import matplotlib.pyplot as plt
import numpy as np

from skinfluence.datasets import load_mnist
from skinfluence.display import InfluentialExamplesDisplay, LeaveOneOutDisplay
from skinfluence.linear_model import LogisticRegression

X_train, y_train, X_test, y_test = load_mnist(binary_digits=(1, 7))
rows = np.random.RandomState(0).choice(len(y_train), 1000, replace=False)
X, y = X_train[rows], y_train[rows]
model = LogisticRegression(C=1.0 / (0.01 * len(y)), solver="newton-cholesky", tol=1e-10,
                           max_iter=1000).fit(X, y)
print(f"test accuracy {model.score(X_test, y_test):.4f}")

losses = model.influence_explainer().test_loss(X_test, y_test)
t = int(np.argmax(losses))
x_t, y_t = X_test[t:t + 1], y_test[t:t + 1]
print(f"test image {t}: label {y_t[0]}, predicted {model.predict(x_t)[0]}, "
      f"loss {losses[t]:.2f}")

# %%
# Predicted vs actual, for the 40 most influential training images
# ----------------------------------------------------------------
# :meth:`LeaveOneOutDisplay.from_estimator` ranks the rows by predicted effect, retrains
# without each of the top 40 (:func:`skinfluence.validation.loo_retrain`, warm-started,
# to ``tol=1e-10``) and plots.  The Newton estimate of the same rows goes on the same
# axes.
fig, ax = plt.subplots(figsize=(5.5, 5))
display = LeaveOneOutDisplay.from_estimator(
    model, X, y, x_t, y_t, top_k=40, name="influence (first order)", ax=ax,
    refit_params={"tol": 1e-10})
newton = model.loo_effect(x_t, y_t, method="newton",
                          train_indices=display.train_indices)[:, 0]
newton_display = LeaveOneOutDisplay.from_predictions(
    newton, display.actual, train_indices=display.train_indices,
    name="one Newton step", ax=ax, scatter_kwargs={"marker": "x"})
ax.set_title("MNIST 1 vs 7: removing one training image")
print(f"Pearson R: first order {display.pearson_r:.4f}, "
      f"one Newton step {newton_display.pearson_r:.4f}")

# %%
# Which training images are they?
# --------------------------------
# The training images behind those numbers, for this test 7 that the model calls a 1:
# the most helpful are 7s drawn like it; the most harmful include 1s with its slant and
# stroke, and 7s drawn unlike it.
InfluentialExamplesDisplay.from_estimator(model, X, y, x_t, y_t, n_examples=5)
plt.show()

"""
Training-set attacks on digits: flipping test predictions by editing one training image
=======================================================================================

Koh & Liang (2017, Section 5.2, Fig. 5) use ``I_pert,loss``, the gradient of a test
loss with respect to the pixels of a training image, to craft training-set attacks: move
one training image a small step along the sign of that gradient, keep it a valid image,
retrain, repeat.  On their dog-vs-fish model, changing one training image (out of 1,800)
flipped 57% of the correctly classified test images they targeted, one at a time.

:func:`skinfluence.attack.training_set_attack` runs that loop for any model with
influence.  Here: scikit-learn's 8x8 digits, 3 vs 8 (the pair a linear model finds
hardest), 200 training images, logistic regression on the raw intensities.  Those
intensities have only 17 levels (0..16), so the attacked images stay on that grid and in
``[0, 16]``, and each pixel may move by at most 6 levels: visible on an 8x8 image, unlike
the paper's one-8-bit-level changes on 299x299 photos, which its Inception features
amplify.
"""

# %%
# The model and the targets
# -------------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

from skinfluence.attack import training_set_attack
from skinfluence.linear_model import LogisticRegression

X, y = load_digits(return_X_y=True)
keep = np.isin(y, [3, 8])
X, y = X[keep], y[keep]
order = np.random.RandomState(0).permutation(len(y))
X, y = X[order], y[order]
X_train, y_train, X_test, y_test = X[:200], y[:200], X[200:], y[200:]

model = LogisticRegression(C=1.0, solver="newton-cholesky", tol=1e-10, max_iter=1000)
model.fit(X_train, y_train)
correct = np.flatnonzero(model.predict(X_test) == y_test)
print(f"test accuracy {model.score(X_test, y_test):.3f}; "
      f"{len(correct)} of {len(y_test)} test images correct")
targets = np.random.RandomState(1).choice(correct, 20, replace=False)

# %%
# One target at a time, as in the paper
# -------------------------------------
# For each target, attack the training image(s) whose perturbation gradient is largest
# (largest L1 norm: what a sign step moves most), for at most 15 steps of one level.
attack = dict(step_size=1.0, n_steps=15, epsilon=6.0, bounds=(0, 16), grid=1.0)
flipped = {}
examples = {}
for n_rows in (1, 2):
    results = [training_set_attack(model, X_train, y_train, X_test[t:t + 1],
                                   y_test[t:t + 1], n_rows=n_rows, **attack)
               for t in targets]
    flipped[n_rows] = np.mean([r.n_flipped for r in results])
    examples[n_rows] = [(t, r) for t, r in zip(targets, results) if r.n_flipped]
    steps = [r.n_steps for r in results if r.n_flipped]
    print(f"{n_rows} training image(s) attacked: {flipped[n_rows]:.0%} of "
          f"{len(targets)} test predictions flipped "
          f"(median {np.median(steps) if steps else float('nan'):.0f} steps)")

# %%
# What an attack changed
# ----------------------
# The first flipped target with one attacked image: the training image before and after,
# the change, and the test image whose prediction flipped.
t, result = examples[1][0]
row = result.train_indices[0]
panels = [(result.X_original[0], f"training #{row} (y={y_train[row]})"),
          (result.X_attacked[0], "attacked"),
          (result.perturbation[0], "change"),
          (X_test[t], f"test: {result.predictions_before[0]} -> "
                      f"{result.predictions_after[0]}")]
fig, axes = plt.subplots(1, 4, figsize=(9, 2.6))
for ax, (image, title) in zip(axes, panels):
    change = title == "change"
    ax.imshow(image.reshape(8, 8), cmap="RdBu" if change else "gray_r",
              vmin=-6 if change else 0, vmax=6 if change else 16)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
print(f"largest pixel change: {np.abs(result.perturbation).max():.0f} of 16 levels; "
      f"target loss {result.target_loss[0]:.2g} -> {result.target_loss[-1]:.2g} "
      f"in {result.n_steps} steps")

# %%
# Several targets with one image
# ------------------------------
# The paper also raised the *mean* loss of several test images with a single training
# image.  Here: the 10 correctly classified test images closest to the decision boundary.
margin = np.abs(model.decision_function(X_test[correct]))
group = correct[np.argsort(margin)[:10]]
joint = training_set_attack(model, X_train, y_train, X_test[group], y_test[group],
                            n_rows=1, step_size=1.0, n_steps=15, epsilon=6.0,
                            bounds=(0, 16), grid=1.0)
print(f"one training image attacked against 10 test images: {joint.n_flipped} of 10 "
      f"flipped ({joint.n_steps} steps; mean target loss "
      f"{joint.target_loss[0]:.3f} -> {joint.target_loss[-1]:.3f})")

fig, ax = plt.subplots(figsize=(5, 3))
labels = ["1 image,\none target", "2 images,\none target", "1 image,\n10 targets"]
values = [flipped[1], flipped[2], joint.fraction_flipped]
ax.bar(labels, values, color=["tab:blue", "tab:blue", "tab:orange"])
ax.set_ylabel("test predictions flipped")
ax.set_ylim(0, 1)
ax.set_title("Digits 3 vs 8: training-set attacks")
fig.tight_layout()
plt.show()

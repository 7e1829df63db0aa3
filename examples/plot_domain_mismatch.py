"""
Debugging a domain mismatch: hospital readmission of children
=============================================================

Koh & Liang (2017, Section 5.3) predict whether a diabetic patient is readmitted to
hospital within 30 days, with logistic regression on a balanced training set of 20,000
encounters from the Diabetes 130-US hospitals data (127 features).  Only 3 of the 24
children under 10 in their training set were readmitted.  To create a domain mismatch,
they removed 20 of the children who were *not* readmitted, leaving 3 readmitted children
out of 4.  The model then wrongly predicts readmission for many children in the test
set, and influence points straight at the cause: for a misclassified test child, the four
training children are each 30-40 times as influential as any other training row.

This example repeats the experiment on the same source data (``../shared/data/diabetes130``,
via :func:`skinfluence.datasets.load_readmission`, which builds the features and the
balanced split the way the paper's notebook did).
"""

# %%
# The balanced readmission set
# ----------------------------
import matplotlib.pyplot as plt
import numpy as np

from skinfluence.datasets import load_readmission
from skinfluence.linear_model import LogisticRegression

data = load_readmission()  # 20,000 balanced training rows; the rest is the test set
is_child_train = data.age_train == "[0-10)"
is_child_test = data.age_test == "[0-10)"
print(f"training rows: {data.X_train.shape}, test rows: {data.X_test.shape[0]}")
print(f"training children: {is_child_train.sum()}, "
      f"readmitted: {data.y_train[is_child_train].sum()}")

# %%
# Induce the mismatch: remove the training children who were not readmitted, all but
# one, so that 3 of the 4 children left were readmitted.
children = np.flatnonzero(is_child_train)
removed = children[data.y_train[children] == 0][:-1]
keep = np.setdiff1d(np.arange(len(data.y_train)), removed)
X, y, is_child = data.X_train[keep], data.y_train[keep], is_child_train[keep]
print(f"removed {len(removed)} children; {y[is_child].sum()} of {is_child.sum()} "
      "training children were readmitted")

# %%
# Fit logistic regression with the paper's L2 strength (0.0001 on the mean loss, i.e.
# ``C = 1 / (0.0001 n)``), before and after the change.


def fit(X, y):
    model = LogisticRegression(C=1.0 / (1e-4 * len(y)), solver="newton-cholesky",
                               tol=1e-10, max_iter=1000)
    return model.fit(X, y)


original = fit(data.X_train, data.y_train)
mismatched = fit(X, y)
X_kids, y_kids = data.X_test[is_child_test], data.y_test[is_child_test]
for name, model in (("original", original), ("mismatched", mismatched)):
    print(f"{name:>10}: test accuracy {model.score(data.X_test, data.y_test):.3f}, "
          f"test children misclassified {np.sum(model.predict(X_kids) != y_kids)} "
          f"of {len(y_kids)}")

# %%
# Which training rows made the model wrong on a child?
# ----------------------------------------------------
# Pick a misclassified test child at random and compute the influence of every training
# row on its loss (the paper's ``I_up,loss``; positive = harmful).
rng = np.random.RandomState(0)
wrong = np.flatnonzero(mismatched.predict(X_kids) != y_kids)
t = rng.choice(wrong)
influence = mismatched.influence(X_kids[t:t + 1], y_kids[t:t + 1])[:, 0]
magnitude = np.abs(influence)
next_row = magnitude[~is_child].max()
print(f"test child {t} (readmitted: {y_kids[t]}), predicted readmitted: "
      f"{mismatched.predict(X_kids[t:t + 1])[0]}")
for i in np.flatnonzero(is_child):
    print(f"  training child {i}: readmitted {y[i]}, influence {influence[i]:+9.1f}, "
          f"{magnitude[i] / next_row:5.1f}x the most influential non-child row")
ratio = magnitude[is_child].min() / next_row
print(f"least influential training child vs next most influential row: {ratio:.1f}x")

# %%
# The same for every misclassified test child: the four training children are always
# the four most influential rows.
influence_all = np.abs(mismatched.influence(X_kids[wrong], y_kids[wrong]))
top_four = np.argsort(-influence_all, axis=0)[:4]
always_children = all(set(col) == set(np.flatnonzero(is_child)) for col in top_four.T)
ratios = influence_all[is_child].min(axis=0) / influence_all[~is_child].max(axis=0)
print(f"{len(wrong)} misclassified test children; training children always the top 4: "
      f"{always_children}")
print(f"ratio (least influential child / next row): median {np.median(ratios):.1f}x, "
      f"range {ratios.min():.1f}x to {ratios.max():.1f}x")

# %%
# The signs tell the story: the three readmitted children are harmful (they pulled the
# prediction towards "readmitted"), the one child who was not readmitted is helpful.
order = np.argsort(-magnitude)[:12]
fig, ax = plt.subplots(figsize=(8, 3.5))
colors = np.where(is_child[order], "tab:red", "tab:gray")
ax.bar(np.arange(len(order)), influence[order], color=colors)
ax.set_xticks(np.arange(len(order)),
              [f"{'child' if is_child[i] else 'row'} {i}\ny={y[i]}" for i in order],
              fontsize=7)
ax.axhline(0, color="black", linewidth=0.5)
ax.set_ylabel("influence on the test child's loss")
ax.set_title("The 12 most influential training rows (children in red)")
fig.tight_layout()

# %%
# Which features? ``I_pert,loss`` of the training children: the gradient of the test
# child's loss in each of their features.  The age indicator is among the largest
# entries (the discharge-disposition indicators, with the largest coefficients, are the
# others).
perturbation = mismatched.perturbation_influence(
    X_kids[t:t + 1], y_kids[t:t + 1], train_indices=np.flatnonzero(is_child))[:, 0, :]
age_column = int(np.flatnonzero(data.feature_names == "age_[0-10)")[0])
for i, row in zip(np.flatnonzero(is_child), perturbation):
    rank = int(np.sum(np.abs(row) > abs(row[age_column]))) + 1
    print(f"training child {i}: the age_[0-10) entry ranks {rank} of {len(row)} features")

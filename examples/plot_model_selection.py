"""
Tuning C with influence: scorers in a grid search, and leave-one-out at one fit each
====================================================================================

Two ways influence helps choose a regularization strength:

- :data:`skinfluence.metrics.loo_scorer` and :data:`~skinfluence.metrics.self_influence_scorer`
  plug into ``scoring=`` of any scikit-learn search.  The first is minus the
  approximate leave-one-out log loss of the training rows; the second is minus the
  largest increase of a row's own loss when that row is removed, i.e. how much the
  model leans on a single row.
- :class:`skinfluence.model_selection.LOOSearchCV` is a grid search scored by that
  leave-one-out loss: one fit per candidate, where exact leave-one-out cross-validation
  needs one per row.

The data is UCI Spambase (``../shared/data/spambase``: 4,601 emails, 57 word and
character frequencies), log-transformed and standardized in a pipeline.
"""

# %%
# Data and pipeline
# -----------------
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from skinfluence.datasets import load_spambase
from skinfluence.linear_model import LogisticRegression
from skinfluence.metrics import loo_scorer, self_influence_scorer
from skinfluence.model_selection import LOOSearchCV
from skinfluence.pipeline import make_pipeline

X, y = load_spambase()
X_train, X_test, y_train, y_test = train_test_split(X, y, train_size=2000, random_state=0,
                                                    stratify=y)
pipe = make_pipeline(FunctionTransformer(np.log1p), StandardScaler(),
                     LogisticRegression(tol=1e-8, solver="newton-cholesky", max_iter=1000))
grid = {"logisticregression__C": np.logspace(-3, 2, 11)}

# %%
# The scorers inside GridSearchCV
# -------------------------------
# Five-fold log loss picks C; the influence scorers are reported beside it for every
# candidate (they describe each fold's fit and its training rows).
search = GridSearchCV(pipe, grid, cv=5, n_jobs=2, refit="neg_log_loss",
                      scoring={"neg_log_loss": "neg_log_loss", "loo": loo_scorer,
                               "reliance": self_influence_scorer})
search.fit(X_train, y_train)
results = search.cv_results_
Cs = grid["logisticregression__C"]
print(f"{'C':>9} {'5-fold log loss':>16} {'approx. LOO loss':>17} "
      f"{'max own-loss increase':>22}")
for j, C in enumerate(Cs):
    print(f"{C:>9.3g} {-results['mean_test_neg_log_loss'][j]:>16.4f} "
          f"{-results['mean_test_loo'][j]:>17.4f} {-results['mean_test_reliance'][j]:>22.4f}")
print(f"GridSearchCV (5-fold log loss) picks C = {search.best_params_['logisticregression__C']:.3g}")

# %%
# LOOSearchCV: leave-one-out at one fit per candidate
# ---------------------------------------------------
start = time.perf_counter()
loo_search = LOOSearchCV(pipe, grid, n_jobs=2).fit(X_train, y_train)
elapsed = time.perf_counter() - start
best_C = loo_search.best_params_["logisticregression__C"]
print(f"LOOSearchCV picks C = {best_C:.3g} (approximate LOO log loss "
      f"{-loo_search.best_score_:.4f}) in {elapsed:.1f} s for {len(Cs)} candidates")
# ``loo_search.score`` is its own scorer (the training rows' LOO loss): ask the refitted
# model for the held-out accuracy
print(f"held-out accuracy of its refitted model: "
      f"{loo_search.best_estimator_.score(X_test, y_test):.4f}")

# %%
# The curves
# ----------
fig, ax = plt.subplots(figsize=(6, 4))
ax.semilogx(Cs, -results["mean_test_neg_log_loss"], "o-", label="5-fold CV log loss")
ax.semilogx(Cs, -loo_search.cv_results_["mean_test_score"], "s-",
            label="approximate LOO log loss (LOOSearchCV)")
ax.set_xlabel("C")
ax.set_ylabel("log loss")
ax2 = ax.twinx()
ax2.semilogx(Cs, -results["mean_test_reliance"], "^--", color="tab:green",
             label="max own-loss increase (right)")
ax2.set_ylabel("largest reliance on one row")
lines = ax.get_legend_handles_labels()
lines2 = ax2.get_legend_handles_labels()
ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper center", fontsize=8)
fig.tight_layout()
plt.show()

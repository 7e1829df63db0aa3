"""
Cleaning a CSV file from the command line: ``skinfluence rank``
===============================================================

``skinfluence rank data.csv --target COL`` fits a model to a table and ranks its rows by
self-influence: the rows the model needs most in order to fit them come first, and that
is where mislabeled rows gather (paper Section 5.4).  This example writes UCI Spambase
(``../shared/data/spambase``) to a CSV with 10% of its labels flipped, runs the command
(in-process through :func:`skinfluence.cli.main`; in a shell it is the same arguments
after ``skinfluence``), and counts how many of the flipped rows the top of the ranking
holds.
"""

# %%
# A CSV with mislabeled rows
# --------------------------
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from skinfluence.cleaning import flip_labels
from skinfluence.cli import main
from skinfluence.datasets import load_spambase

X, y = load_spambase()
y_noisy, flipped = flip_labels(y, 0.1, random_state=0)
table = pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])])
table["is_spam"] = y_noisy
folder = Path(tempfile.mkdtemp())
data_csv = folder / "spambase_noisy.csv"
table.to_csv(data_csv, index=False)
print(f"{data_csv.name}: {len(table)} rows, {len(flipped)} labels flipped")

# %%
# Rank the rows
# -------------
# ``--top 460`` keeps the top 10%; the output holds each row's rank, its original row
# number, its self-influence score, the model's prediction, then the row as read.
ranked_csv = folder / "suspects.csv"
status = main(["rank", str(data_csv), "--target", "is_spam", "--top", "460",
               "-o", str(ranked_csv), "--progress", "off"])
assert status == 0
ranked = pd.read_csv(ranked_csv)
print(ranked.iloc[:5, :5].to_string(index=False))

# %%
# How many of the flipped rows are in the top 10%?
# ------------------------------------------------
is_flipped = np.isin(ranked["row"], flipped)
print(f"top 10% of the ranking: {is_flipped.sum()} of {len(flipped)} flipped rows "
      f"(a random 10% would hold about {0.1 * len(flipped):.0f})")

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(np.arange(1, len(ranked) + 1), np.cumsum(is_flipped), label="skinfluence rank")
ax.plot([0, len(ranked)], [0, len(ranked) * len(flipped) / len(table)], "--",
        color="0.5", label="random order (expected)")
ax.set_xlabel("rows checked, in the ranking's order")
ax.set_ylabel("flipped labels found")
ax.legend()
fig.tight_layout()
plt.show()

# %%
# The input file was only read (``skinfluence rank`` never modifies it); remove both.
import shutil  # noqa: E402

shutil.rmtree(folder)

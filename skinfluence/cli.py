"""The ``skinfluence`` command line.

``skinfluence demo`` flips 10% of the labels of a dataset that ships with
scikit-learn and shows how many of the flipped rows each ranking finds (the paper's
Section 5.4 experiment, in seconds).

``skinfluence rank data.csv --target COL`` ranks the rows of a table by how much the
model leans on each one (self-influence), or by their influence on a held-out split, and
writes the ranked rows with their scores: the paper's data-cleaning workflow on a CSV
(see :mod:`skinfluence._rank`).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

__all__ = ["main", "label_flip_demo"]


def label_flip_demo(*, dataset: str = "breast_cancer", flip_fraction: float = 0.1,
                    C: float = 1.0, random_state: int = 0,
                    fractions=(0.05, 0.10, 0.20)) -> dict:
    """Flip labels, then count flipped rows caught by each ranking in the top fractions.

    Returns a dict ``{method: [found at each fraction]}`` plus ``"n_flipped"`` and
    ``"n_train"``.
    """
    from sklearn import datasets
    from sklearn.preprocessing import StandardScaler

    from .cleaning import RANKINGS, flip_labels
    from .linear_model import LogisticRegression

    loaders = {"breast_cancer": datasets.load_breast_cancer, "wine": datasets.load_wine,
               "digits": datasets.load_digits, "iris": datasets.load_iris}
    X, y = loaders[dataset](return_X_y=True)
    X = StandardScaler().fit_transform(X)
    rng = np.random.RandomState(random_state)
    y_noisy, flipped = flip_labels(y, flip_fraction, random_state=rng)
    clf = LogisticRegression(C=C, tol=1e-8, max_iter=5000).fit(X, y_noisy)
    n = len(y)
    is_flipped = np.zeros(n, dtype=bool)
    is_flipped[flipped] = True
    table = {}
    for name, key in _DEMO_RANKINGS.items():
        order = RANKINGS[key](clf, X, y_noisy, rng)
        table[name] = [int(is_flipped[order[: int(round(f * n))]].sum()) for f in fractions]
    table.update(n_flipped=len(flipped), n_train=n, fractions=list(fractions))
    return table


#: the demo's rows: the paper's self-influence, each row's loss at its one-step Newton
#: leave-one-out prediction (out of sample, from the same single fit), the baselines
_DEMO_RANKINGS = {"influence (self)": "influence", "loo loss (Newton)": "loo loss",
                  "train loss": "train loss", "random": "random"}


def _print_demo(table: dict, dataset: str) -> None:
    fractions = table["fractions"]
    print(f"{dataset}: {table['n_train']} rows, {table['n_flipped']} labels flipped "
          "(10%); flipped rows found when checking the top ...")
    header = f"{'ranking':<18}" + "".join(f"{int(f * 100):>6}%" for f in fractions)
    print(header)
    print("-" * len(header))
    for name in _DEMO_RANKINGS:
        print(f"{name:<18}" + "".join(f"{v:>7d}" for v in table[name]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="skinfluence",
        description="Which training rows made my scikit-learn model say this?",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="find flipped labels on a built-in dataset")
    demo.add_argument("--dataset", default="breast_cancer",
                      choices=["breast_cancer", "wine", "digits", "iris"])
    demo.add_argument("--seed", type=int, default=0)
    from ._rank import add_rank_parser, run_rank

    add_rank_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "demo":
        _print_demo(label_flip_demo(dataset=args.dataset, random_state=args.seed), args.dataset)
        return 0
    if args.command == "rank":
        return run_rank(args)
    return 2  # pragma: no cover - argparse enforces the sub-commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

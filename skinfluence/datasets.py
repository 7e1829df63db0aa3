"""Loaders for the real datasets the tests, benchmarks and examples use.

Nothing is downloaded: the files live in a local data folder (the project's
``../shared/data``), found from ``data_home``, the ``SKINFLUENCE_DATA`` environment
variable, or a ``shared/data`` folder beside the repository or the working directory.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import numpy as np

__all__ = [
    "get_data_home",
    "load_mnist",
    "load_enron1",
    "load_spambase",
    "load_adult",
    "load_diabetes130",
    "load_readmission",
]


def get_data_home(data_home=None) -> Path:
    """The folder holding ``mnist/``, ``enron1/``, ``spambase/``, ``adult/``, ``diabetes130/``."""
    candidates = []
    if data_home is not None:
        candidates.append(Path(data_home))
    if os.environ.get("SKINFLUENCE_DATA"):
        candidates.append(Path(os.environ["SKINFLUENCE_DATA"]))
    repo = Path(__file__).resolve().parents[1]
    for base in (repo, Path.cwd()):
        candidates += [base.parent / "shared" / "data", base / "shared" / "data"]
    for path in candidates:
        if path.is_dir():
            return path
    raise FileNotFoundError(
        "No data folder found; pass data_home= or set SKINFLUENCE_DATA (looked in: "
        + ", ".join(str(c) for c in candidates) + ")."
    )


def _file(data_home, *parts) -> Path:
    path = get_data_home(data_home).joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found.")
    return path


def load_mnist(data_home=None, *, binary_digits=None, scale=True):
    """MNIST as ``(X_train, y_train, X_test, y_test)``.

    Parameters
    ----------
    data_home : path, default=None
    binary_digits : tuple of two ints, default=None
        Keep only these two digits (e.g. ``(1, 7)`` for the paper's Fig. 1 and 3), labels
        unchanged.
    scale : bool, default=True
        Divide pixels by 255 (float64); otherwise keep uint8.
    """
    with np.load(_file(data_home, "mnist", "mnist.npz")) as data:
        arrays = [data[k] for k in ("X_train", "y_train", "X_test", "y_test")]
    X_train, y_train, X_test, y_test = arrays
    if binary_digits is not None:
        keep_tr = np.isin(y_train, binary_digits)
        keep_te = np.isin(y_test, binary_digits)
        X_train, y_train = X_train[keep_tr], y_train[keep_tr]
        X_test, y_test = X_test[keep_te], y_test[keep_te]
    if scale:
        X_train = X_train.astype(np.float64) / 255.0
        X_test = X_test.astype(np.float64) / 255.0
    return X_train, y_train.astype(np.int64), X_test, y_test.astype(np.int64)


def load_enron1(data_home=None, *, min_df=5, train_fraction=0.8, random_state=0):
    """Enron1 spam emails as bag-of-words counts, the paper's Section 5.4 set-up.

    The emails are read as latin-1 (spam = 1, ham = 0), shuffled with ``random_state``
    and split 80/20 (4,137 train / 1,035 test); the vocabulary is a
    ``CountVectorizer(min_df=min_df)`` fitted on the training emails.  The paper also
    lemmatized with spaCy, which is not available offline here, so the vocabulary
    differs slightly from theirs.

    Returns
    -------
    X_train, y_train, X_test, y_test : sparse CSR counts and 0/1 labels
    vocabulary : ndarray of str
    """
    from sklearn.feature_extraction.text import CountVectorizer

    emails = {}
    # one sequential pass: seeking backwards in a .tar.gz re-decompresses from the start
    with tarfile.open(_file(data_home, "enron1", "enron1.tar.gz"), mode="r|gz") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith((".ham.txt", ".spam.txt")):
                emails[member.name] = tar.extractfile(member).read().decode("latin-1")
    names = sorted(emails)  # a fixed order, whatever the archive's
    texts = [emails[name] for name in names]
    labels = [1 if name.endswith(".spam.txt") else 0 for name in names]
    rng = np.random.RandomState(random_state)
    order = rng.permutation(len(texts))
    n_train = int(train_fraction * len(texts))
    train, test = order[:n_train], order[n_train:]
    vectorizer = CountVectorizer(min_df=min_df)
    X_train = vectorizer.fit_transform([texts[i] for i in train]).tocsr().astype(np.float64)
    X_test = vectorizer.transform([texts[i] for i in test]).tocsr().astype(np.float64)
    y = np.asarray(labels)
    return X_train, y[train], X_test, y[test], vectorizer.get_feature_names_out()


def load_spambase(data_home=None):
    """UCI Spambase: ``X`` (4601, 57) float64 and ``y`` (1 = spam)."""
    with gzip.open(_file(data_home, "spambase", "spambase.data.gz"), "rt") as fh:
        data = np.loadtxt(fh, delimiter=",")
    return data[:, :-1], data[:, -1].astype(np.int64)


def load_adult(data_home=None, *, subset="train"):
    """UCI Adult as a pandas DataFrame (``Y`` is the income label, ``?`` read as missing)."""
    import pandas as pd

    name = {"train": "adult.data.gz", "test": "adult.test.gz"}[subset]
    frame = pd.read_csv(_file(data_home, "adult", name), skipinitialspace=True, na_values="?")
    frame["Y"] = frame["Y"].str.rstrip(".")
    return frame


def load_diabetes130(data_home=None):
    """Diabetes 130-US hospitals as a pandas DataFrame (``?`` read as missing)."""
    import pandas as pd

    with gzip.open(_file(data_home, "diabetes130", "diabetic_data.csv.gz"), "rb") as fh:
        raw = fh.read()
    return pd.read_csv(io.BytesIO(raw), na_values="?", low_memory=False)


#: Koh & Liang's readmission features (their influence-release notebook): counts as they are
READMISSION_NUMERIC = (
    "time_in_hospital", "num_lab_procedures", "num_procedures", "num_medications",
    "number_outpatient", "number_emergency", "number_inpatient", "number_diagnoses",
)
#: ... and these one-hot encoded (a two-valued column becomes a single indicator)
READMISSION_CATEGORICAL = (
    "gender", "race", "age", "discharge_disposition_id", "max_glu_serum", "A1Cresult",
    "metformin", "repaglinide", "nateglinide", "chlorpropamide", "glimepiride",
    "acetohexamide", "glipizide", "glyburide", "tolbutamide", "pioglitazone",
    "rosiglitazone", "acarbose", "miglitol", "troglitazone", "tolazamide", "examide",
    "citoglipton", "insulin", "glyburide-metformin", "glipizide-metformin",
    "glimepiride-pioglitazone", "metformin-rosiglitazone", "metformin-pioglitazone",
    "change", "diabetesMed",
)


def load_readmission(data_home=None, *, n_train=20_000, random_state=2):
    """The paper's hospital-readmission problem (Section 5.3), built from Diabetes 130-US.

    As Koh & Liang did: the target is readmission within 30 days (``readmitted ==
    "<30"``: 1, otherwise 0); the features are 8 counts, unscaled, and 31 categorical
    columns one-hot encoded, a two-valued column as a single indicator and a missing
    value as a category of its own (127 columns in all).  The training set is balanced:
    ``n_train / 2`` encounters drawn at random from each class; every other encounter
    is a test row (so the test set keeps the natural 11% readmission rate).

    Parameters
    ----------
    data_home : path, default=None
    n_train : int, default=20000
        Balanced training rows (even).
    random_state : int, default=2
        Seeds the draw of the training rows.  The draws are made in the order of the
        paper's notebook (readmitted rows, then the others, then the training order), so
        the default seed gives its split: 24 children under 10 in the training set, 3 of
        them readmitted.

    Returns
    -------
    Bunch with ``X_train``, ``y_train``, ``X_test``, ``y_test`` (float64 features, 0/1
    labels), ``feature_names`` and ``age_train``, ``age_test`` (the age bracket of each
    row, e.g. ``"[0-10)"``).
    """
    from sklearn.preprocessing import OneHotEncoder
    from sklearn.utils import Bunch

    frame = load_diabetes130(data_home)
    categories = frame[list(READMISSION_CATEGORICAL)].astype(str)  # NaN -> "nan" category
    encoder = OneHotEncoder(drop="if_binary", sparse_output=False, dtype=np.float64)
    X = np.hstack([frame[list(READMISSION_NUMERIC)].to_numpy(np.float64),
                   encoder.fit_transform(categories)])
    names = np.concatenate([READMISSION_NUMERIC, encoder.get_feature_names_out()])
    y = (frame["readmitted"] == "<30").to_numpy().astype(np.int64)
    rng = np.random.RandomState(random_state)
    half = n_train // 2
    train = np.concatenate([rng.permutation(np.flatnonzero(y == label))[:half]
                            for label in (1, 0)])
    train = rng.permutation(train)
    test = np.setdiff1d(np.arange(len(y)), train)
    age = frame["age"].to_numpy()
    return Bunch(X_train=X[train], y_train=y[train], X_test=X[test], y_test=y[test],
                 feature_names=names, age_train=age[train], age_test=age[test])

"""``skinfluence rank``: rank the rows of a table by influence, for data cleaning.

What it does, in the order a user would do it by hand:

1. read the table (CSV, optionally compressed; Parquet when pyarrow is installed);
2. drop rows whose target is missing (reported), and feature columns that look like
   identifiers (text with a distinct value in most rows);
3. encode the features in a :class:`~skinfluence.pipeline.Pipeline`: numbers are
   median-imputed with a missing-value indicator and standardized, everything else is
   treated as a category (missing is its own category) and one-hot encoded;
4. fit the chosen model, then score every training row: by self-influence
   ``I_up,loss(z_i, z_i)`` (most negative first: the rows the model needs most to fit
   them, where mislabeled rows gather), or with ``--test-size`` by the mean influence
   of each training row on a held-out split (positive = harmful, most harmful first);
5. write the ranked rows, with their rank, original row number and score, atomically.

Bad input ends with one line on stderr and exit status 1; the input is only read.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["add_rank_parser", "run_rank", "build_pipeline", "MODELS", "RankError"]

#: fewer rows than this cannot give a meaningful ranking (nor a held-out split)
MIN_ROWS = 10
#: classification with more classes than this is almost surely a numeric target
MAX_CLASSES = 50
#: a text column with a distinct value in more than this share of rows is an identifier
ID_SHARE = 0.5
#: training rows (self-influence) or test rows (held-out influence) per progress step
CHUNK_ROWS = 2000


class RankError(Exception):
    """Bad input or an impossible request: reported as one line, exit status 1."""


@dataclass(frozen=True)
class ModelSpec:
    """How ``--model NAME`` builds its estimator (imported only when chosen)."""

    task: str  # "classification" or "regression"
    module: str
    name: str
    params: Callable[[float], dict]  # --C -> constructor keywords
    description: str


# one line per model: the penalty is 0.5 * (1/C) * ||w||^2 on the summed loss for all
MODELS: dict[str, ModelSpec] = {
    "logistic": ModelSpec("classification", "skinfluence.linear_model", "LogisticRegression",
                          lambda C: dict(C=C, tol=1e-8, max_iter=10_000,
                                         solver="newton-cholesky"),
                          "logistic regression"),
    "svm": ModelSpec("classification", "skinfluence.svm", "LinearSVC",
                     lambda C: dict(C=C, tol=1e-8, max_iter=100_000), "linear SVM"),
    "kernel": ModelSpec("classification", "skinfluence.svm", "SVC",
                        lambda C: dict(C=C, kernel="rbf", tol=1e-8), "RBF-kernel SVM"),
    "ridge": ModelSpec("regression", "skinfluence.linear_model", "Ridge",
                       lambda C: dict(alpha=1.0 / C), "ridge regression"),
}


def _model_class(model: str):
    spec = MODELS[model]
    try:
        return getattr(importlib.import_module(spec.module), spec.name)
    except (ImportError, AttributeError):
        raise RankError(
            f"--model {model} ({spec.description}) is not available in this version of "
            f"skinfluence (it needs {spec.module}.{spec.name}); use --model logistic"
        ) from None


# -------------------------------------------------------------------------------------
# command line
# -------------------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (value > 0 and np.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def add_rank_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``rank`` sub-command to the ``skinfluence`` parser."""
    rank = subparsers.add_parser(
        "rank", help="rank the rows of a CSV/Parquet table by influence (data cleaning)",
        description="Fit a model to a table and rank its rows by self-influence (or by "
                    "influence on a held-out split); write the ranked rows with their "
                    "scores and original row numbers.")
    rank.add_argument("data", help="input table: .csv (.gz/.bz2/.zip/.xz), .tsv, or "
                                   ".parquet (needs pyarrow); only read, never modified")
    rank.add_argument("--target", required=True, help="name of the target column "
                                                      "(its position with --no-header)")
    rank.add_argument("--model", default="logistic", choices=sorted(MODELS),
                      help="logistic (default) and svm/kernel classify; ridge regresses")
    rank.add_argument("--top", type=_positive_int, default=None,
                      help="write only the K highest-ranked rows (default: all)")
    rank.add_argument("-o", "--output", default=None,
                      help="output file (.csv, .csv.gz, .parquet); stdout when omitted")
    rank.add_argument("--test-size", type=_fraction, default=None,
                      help="hold out this fraction and rank the other rows by their "
                           "influence on it (default: rank all rows by self-influence)")
    rank.add_argument("--C", type=_positive_float, default=1.0,
                      help="inverse regularization strength (ridge: alpha = 1/C)")
    rank.add_argument("--ignore", action="append", default=[], metavar="COL",
                      help="leave a column out of the features (repeatable)")
    rank.add_argument("--no-header", action="store_true",
                      help="the CSV has no header: columns are named 0, 1, 2, ...")
    rank.add_argument("--sep", default=None,
                      help="CSV field separator (default: ',' or tab for .tsv)")
    rank.add_argument("--na-values", action="append", default=[], metavar="TOKEN",
                      help="extra token meaning 'missing', e.g. '?' (repeatable)")
    rank.add_argument("--seed", type=int, default=0, help="seed of the held-out split")
    rank.add_argument("--progress", choices=["auto", "on", "off"], default="auto",
                      help="progress bar on stderr (auto: on a terminal, long runs only)")
    rank.add_argument("--debug", action="store_true",
                      help="show the full traceback of an error")
    return rank


def run_rank(args) -> int:
    """Run ``skinfluence rank``; returns the exit status."""
    try:
        _rank(args)
    except RankError as exc:
        _say("error", str(exc))
        if args.debug:
            raise
        return 1
    except KeyboardInterrupt:
        _say("error", "interrupted")
        return 130
    return 0


def _say(kind: str, message: str) -> None:
    # one line per message, whatever the exception text held
    print(f"skinfluence: {kind}: {' '.join(str(message).split())}", file=sys.stderr)


# -------------------------------------------------------------------------------------
# reading
# -------------------------------------------------------------------------------------
_PARQUET = (".parquet", ".pq")


def read_table(path: str, *, no_header: bool = False, sep: str | None = None,
               na_values=()):
    """Read a CSV or Parquet file into a DataFrame, or raise :class:`RankError`."""
    try:
        import pandas as pd
    except ImportError:
        raise RankError("skinfluence rank needs pandas (pip install pandas)") from None
    file = Path(path)
    if not file.exists():
        raise RankError(f"{path}: no such file")
    if file.is_dir():
        raise RankError(f"{path}: is a directory, not a data file")
    if file.stat().st_size == 0:
        raise RankError(f"{path}: the file is empty")
    try:
        if file.suffix.lower() in _PARQUET:
            try:
                frame = pd.read_parquet(file)
            except ImportError:
                raise RankError(
                    f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
        else:
            if sep is None:
                sep = "\t" if ".tsv" in file.suffixes else ","
            frame = pd.read_csv(file, sep=sep, header=None if no_header else "infer",
                                skipinitialspace=True, na_values=list(na_values) or None,
                                low_memory=False)
    except RankError:
        raise
    except pd.errors.EmptyDataError:
        raise RankError(f"{path}: the file holds no table") from None
    except UnicodeDecodeError:
        raise RankError(f"{path}: cannot read it as text (not UTF-8; is it binary?)") from None
    except PermissionError:
        raise RankError(f"{path}: permission denied") from None
    except (pd.errors.ParserError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RankError(f"{path}: cannot parse it as a table ({first})") from None
    frame.columns = [str(c) for c in frame.columns]
    return frame


# -------------------------------------------------------------------------------------
# preparing
# -------------------------------------------------------------------------------------
def _split_columns(frame, target: str, ignore) -> tuple[list[str], list[str], list[str]]:
    """(numeric, categorical, dropped identifier-like) feature columns."""
    import pandas as pd

    numeric, categorical, dropped = [], [], []
    n = len(frame)
    for col in frame.columns:
        if col == target or col in ignore:
            continue
        values = frame[col]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            numeric.append(col)
        elif n > 2 * MIN_ROWS and values.nunique() > ID_SHARE * n:
            dropped.append(col)
        else:
            categorical.append(col)
    return numeric, categorical, dropped


def _as_categories(values):
    """Text categories, NaN where missing (mixed types would trip the encoder)."""
    return values.astype(str).where(values.notna(), np.nan).astype(object)


def build_pipeline(numeric: list[str], categorical: list[str], estimator):
    """The preprocessing a user would write, ending with ``estimator``.

    Numbers: median imputation with a missing-value indicator, then standardization.
    Other columns: categories, missing as its own category, one-hot encoded (categories
    unseen in training are ignored).

    Parameters
    ----------
    numeric, categorical : list of str
        Column names.
    estimator : estimator carrying :class:`~skinfluence.InfluenceMixin`

    Returns
    -------
    skinfluence.pipeline.Pipeline
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline as sk_make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from .pipeline import make_pipeline

    parts = []
    if numeric:
        parts.append(("numeric", sk_make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True), StandardScaler()), numeric))
    if categorical:
        parts.append(("categorical", sk_make_pipeline(
            SimpleImputer(strategy="constant", fill_value="(missing)"),
            OneHotEncoder(handle_unknown="ignore")), categorical))
    return make_pipeline(ColumnTransformer(parts), estimator)


def _check_target(y, target: str, task: str):
    import pandas as pd

    if task == "regression":
        numbers = pd.to_numeric(y, errors="coerce")
        bad = y[numbers.isna()]
        if len(bad):
            raise RankError(
                f"target {target!r} is not numeric (e.g. {str(bad.iloc[0])!r}); "
                "regression needs numbers, classification models are logistic/svm/kernel")
        if numbers.nunique() < 2:
            raise RankError(f"target {target!r} is constant; nothing to fit")
        return numbers.astype(float)
    classes = y.unique()
    if len(classes) < 2:
        raise RankError(
            f"target {target!r} has only one class ({str(classes[0])!r}); "
            "ranking needs at least two")
    if pd.api.types.is_float_dtype(y) and not np.all(np.mod(y, 1) == 0):
        raise RankError(
            f"target {target!r} holds non-integer numbers, so it looks continuous; "
            "use --model ridge to regress it")
    if len(classes) > MAX_CLASSES:
        raise RankError(
            f"target {target!r} has {len(classes)} distinct values, more than the "
            f"{MAX_CLASSES} classes a classifier ranks here; use --model ridge for a "
            "numeric target")
    return y if pd.api.types.is_numeric_dtype(y) else _as_categories(y)


@dataclass
class _Problem:
    X: object
    y: object
    X_test: object
    y_test: object
    numeric: list
    categorical: list


def _prepare(args, frame) -> _Problem:
    target = args.target
    if target not in frame.columns:
        shown = ", ".join(frame.columns[:8]) + (", ..." if frame.shape[1] > 8 else "")
        raise RankError(f"column {target!r} not found; the columns are: {shown}")
    unknown = [c for c in args.ignore if c not in frame.columns]
    if unknown:
        raise RankError(f"--ignore names unknown column(s): {', '.join(unknown)}")
    spec = MODELS[args.model]
    missing_target = frame[target].isna()
    if missing_target.any():
        _say("note", f"left out {int(missing_target.sum())} row(s) whose target is missing")
        frame = frame[~missing_target]
    if len(frame) < MIN_ROWS:
        raise RankError(f"too few rows: {len(frame)} with a target (need at least {MIN_ROWS})")
    numeric, categorical, dropped = _split_columns(frame, target, args.ignore)
    if dropped:
        _say("note", "left out identifier-like column(s) with a distinct value in most "
                     f"rows: {', '.join(dropped)} (rename or recode them to use them)")
    if not numeric and not categorical:
        raise RankError("no feature columns left besides the target")
    X = frame[numeric + categorical].copy()
    for col in categorical:
        X[col] = _as_categories(X[col])
    y = _check_target(frame[target], target, spec.task)
    if args.test_size is None:
        return _Problem(X, y, None, None, numeric, categorical)
    return _split(X, y, args, spec, numeric, categorical)


def _split(X, y, args, spec, numeric, categorical) -> _Problem:
    from sklearn.model_selection import train_test_split

    stratify = None
    if spec.task == "classification" and y.value_counts().min() >= 2:
        stratify = y
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=args.test_size,
                                              random_state=args.seed, stratify=stratify)
    if len(y_tr) < MIN_ROWS or len(y_te) < 1:
        raise RankError(
            f"too few rows: --test-size {args.test_size} leaves {len(y_tr)} training and "
            f"{len(y_te)} held-out rows (need at least {MIN_ROWS} and 1)")
    if spec.task == "classification" and y_tr.nunique() < 2:
        raise RankError("the training part of the split has only one class")
    if spec.task == "classification":
        # a class too rare to be stratified can land in the held-out part only: the
        # model cannot score a loss on a class it never saw
        unseen = ~y_te.isin(set(y_tr))
        if unseen.all():
            raise RankError("no held-out row has a class that occurs in the training part "
                            "of the split; use a larger --test-size or more rows")
        if unseen.any():
            _say("note", f"left out {int(unseen.sum())} held-out row(s) whose class does not "
                         "occur in the training part of the split")
            X_te, y_te = X_te[~unseen], y_te[~unseen]
    return _Problem(X_tr, y_tr, X_te, y_te, numeric, categorical)


# -------------------------------------------------------------------------------------
# progress
# -------------------------------------------------------------------------------------
class _Progress:
    """tqdm when installed, else a one-line counter on stderr; silent when disabled."""

    def __init__(self, total: int, description: str, enabled: bool):
        self.total, self.description, self.enabled = total, description, enabled
        self.done = 0
        self._bar = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                self._write()
            else:
                self._bar = tqdm(total=total, desc=description, file=sys.stderr, leave=True)

    def _write(self) -> None:
        end = "\n" if self.done >= self.total else ""
        print(f"\r{self.description}: {self.done}/{self.total}", end=end, file=sys.stderr,
              flush=True)

    def update(self) -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.update(1)
        elif self.enabled:
            self._write()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.enabled and self.done < self.total:
            print(file=sys.stderr)


def _show_progress(args, n_chunks: int) -> bool:
    if args.progress == "on":
        return True
    if args.progress == "off":
        return False
    return n_chunks > 1 and sys.stderr.isatty()


def _chunks(n: int) -> list[np.ndarray]:
    return np.array_split(np.arange(n), max(1, -(-n // CHUNK_ROWS)))


# -------------------------------------------------------------------------------------
# fitting and scoring
# -------------------------------------------------------------------------------------
def _fit(args, problem: _Problem):
    spec = MODELS[args.model]
    estimator = _model_class(args.model)(**spec.params(args.C))
    pipe = build_pipeline(problem.numeric, problem.categorical, estimator)
    n_chunks = len(_chunks(len(problem.y)))
    if _show_progress(args, n_chunks):
        print(f"fitting {spec.description} on {len(problem.y)} rows x "
              f"{len(problem.numeric) + len(problem.categorical)} columns", file=sys.stderr)
    try:
        pipe.fit(problem.X, problem.y)
    except (ValueError, MemoryError) as exc:
        raise RankError(f"the model could not be fitted: {exc}") from None
    return pipe


def _scores(args, pipe, problem: _Problem):
    """(score name, Series of scores by row label, ascending?)"""
    import pandas as pd

    labels = problem.X.index
    if problem.X_test is None:
        chunks = _chunks(len(labels))
        bar = _Progress(len(chunks), "self-influence", _show_progress(args, len(chunks)))
        parts = []
        try:
            for rows in chunks:
                parts.append(pipe.self_influence(train_indices=labels[rows]))
                bar.update()
        finally:
            bar.close()
        # most negative first: the rows the model most needs in order to fit them
        return "self_influence", pd.concat(parts), True
    chunks = _chunks(len(problem.y_test))
    bar = _Progress(len(chunks), "influence on held-out rows",
                    _show_progress(args, len(chunks)))
    total = pd.Series(0.0, index=labels)
    try:
        for rows in chunks:
            block = pipe.influence(problem.X_test.iloc[rows], problem.y_test.iloc[rows])
            total += block.sum(axis=1)
            bar.update()
    finally:
        bar.close()
    # mean I_up,loss over the held-out rows: positive = harmful, most harmful first
    return "influence_on_test", total / len(problem.y_test), False


def _ranked_table(frame, scores, score_name: str, ascending: bool, pipe, problem, top):
    import pandas as pd

    order = scores.sort_values(ascending=ascending, kind="stable")
    if top is not None:
        order = order.iloc[:top]
    rows = order.index
    names = {}
    for name in ("rank", "row", score_name, "predicted"):
        unique = name
        while unique in frame.columns:
            unique = "_" + unique
        names[name] = unique
    extra = pd.DataFrame({
        names["rank"]: np.arange(1, len(rows) + 1),
        names["row"]: rows.to_numpy(),
        names[score_name]: order.to_numpy(),
        names["predicted"]: pipe.predict(problem.X.loc[rows]),
    }, index=rows)
    return pd.concat([extra, frame.loc[rows]], axis=1)


# -------------------------------------------------------------------------------------
# writing
# -------------------------------------------------------------------------------------
def _check_output(output: str | None, data: str) -> None:
    if output is None or output == "-":
        return
    out = Path(output)
    if out.exists() and out.resolve() == Path(data).resolve():
        raise RankError(f"{output}: the output would overwrite the input; choose another name")
    if out.exists() and out.is_dir():
        raise RankError(f"{output}: is a directory")
    if not out.parent.exists():
        raise RankError(f"{output}: directory {str(out.parent)!r} does not exist")
    if out.suffix.lower() in _PARQUET:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise RankError(f"{output}: writing Parquet needs pyarrow (pip install "
                            "pyarrow); use a .csv name") from None


def write_table(table, output: str | None) -> None:
    """Write to stdout, or atomically to ``output`` (temporary file + ``os.replace``)."""
    if output is None or output == "-":
        table.to_csv(sys.stdout, index=False)
        return
    out = Path(output)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.",
                               suffix=".tmp" + "".join(out.suffixes))
    os.close(fd)
    try:
        if out.suffix.lower() in _PARQUET:
            table.to_parquet(tmp, index=False)
        else:
            table.to_csv(tmp, index=False)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; give it normal rights
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _rank(args) -> None:
    _check_output(args.output, args.data)
    frame = read_table(args.data, no_header=args.no_header, sep=args.sep,
                       na_values=args.na_values)
    problem = _prepare(args, frame)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipe = _fit(args, problem)
        score_name, scores, ascending = _scores(args, pipe, problem)
    for message in dict.fromkeys(str(w.message) for w in caught):
        _say("warning", message)
    table = _ranked_table(frame, scores, score_name, ascending, pipe, problem, args.top)
    try:
        write_table(table, args.output)
    except OSError as exc:
        raise RankError(f"{args.output}: cannot write ({exc.strerror or exc})") from None

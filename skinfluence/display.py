"""Plots of the paper's figures, following scikit-learn's Display convention.

Each Display keeps the numbers it shows as attributes and draws them with :meth:`plot`;
``from_estimator`` computes the numbers from a fitted model (and ``from_predictions`` or
the constructor takes numbers computed elsewhere).  After plotting, the artists are kept
too: ``figure_``, ``ax_`` / ``axes_`` and the lines, markers or images drawn.
matplotlib is imported only inside :meth:`plot`: install it with
``pip install skinfluence[plot]``.

- :class:`LeaveOneOutDisplay`: predicted vs actual change of the test loss when a training
  row is removed (paper Fig. 2), Pearson R in the legend.
- :class:`LabelFixingDisplay`: test accuracy and share of flipped labels found vs share of
  training data checked, for several rankings (paper Fig. 6).
- :class:`InfluentialExamplesDisplay`: a test image with its most helpful and most harmful
  training images and their influence (paper Fig. 1 and 4).
"""

from __future__ import annotations

import numpy as np

from ._explained import influence_engine
from .validation import loo_retrain, pearson_r

__all__ = ["LeaveOneOutDisplay", "LabelFixingDisplay", "InfluentialExamplesDisplay"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Plotting needs matplotlib: pip install 'skinfluence[plot]'."
        ) from exc
    return plt


def _axes_and_figure(ax):
    plt = _pyplot()
    if ax is None:
        fig, ax = plt.subplots()
    return ax, ax.figure


# -------------------------------------------------------------------------------------
# Fig. 2: predicted vs actual leave-one-out
# -------------------------------------------------------------------------------------
class LeaveOneOutDisplay:
    """Predicted vs actual change of the test loss when single training rows are removed.

    The paper's Fig. 2: each marker is one training row; on the horizontal axis the change
    of the test loss measured by retraining without the row, on the vertical axis the
    change influence predicts.  Markers on the diagonal mean influence is exact.

    Parameters
    ----------
    predicted : array-like of shape (n_rows,)
        Predicted change of the test loss on removal (``loo_effect``).
    actual : array-like of shape (n_rows,)
        Actual change, from retraining (:func:`skinfluence.validation.loo_retrain`).
    train_indices : array-like of shape (n_rows,), default=None
        Which training rows these are.
    name : str, default=None
        Legend name of the estimate (e.g. ``"influence"`` or ``"Newton"``).

    Attributes
    ----------
    pearson_r : float
        Pearson correlation of ``predicted`` and ``actual``.
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure
    scatter_ : matplotlib PathCollection
        The markers.
    line_ : matplotlib Line2D
        The diagonal ``predicted = actual``.

    Examples
    --------
    >>> from skinfluence.display import LeaveOneOutDisplay
    >>> display = LeaveOneOutDisplay([0.1, -0.2, 0.3], [0.12, -0.18, 0.33])
    >>> round(display.pearson_r, 3)
    0.999
    """

    def __init__(self, predicted, actual, *, train_indices=None, name: str | None = None):
        self.predicted = np.asarray(predicted, dtype=np.float64).ravel()
        self.actual = np.asarray(actual, dtype=np.float64).ravel()
        if self.predicted.shape != self.actual.shape:
            raise ValueError(
                f"predicted has {self.predicted.size} values but actual has {self.actual.size}.")
        if self.predicted.size < 2:
            raise ValueError("LeaveOneOutDisplay needs at least two rows to correlate.")
        self.train_indices = None if train_indices is None else np.asarray(train_indices)
        self.name = name
        self.pearson_r = pearson_r(self.predicted, self.actual)

    def plot(self, ax=None, *, name: str | None = None, scatter_kwargs: dict | None = None,
             line_kwargs: dict | None = None) -> "LeaveOneOutDisplay":
        """Draw the markers, the diagonal and the legend.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Where to draw; a new figure when None.
        name : str, default=None
            Legend name, overriding the one given at construction.
        scatter_kwargs, line_kwargs : dict, default=None
            Passed to ``ax.scatter`` and to ``ax.plot`` (the diagonal).

        Returns
        -------
        self : LeaveOneOutDisplay
        """
        ax, fig = _axes_and_figure(ax)
        name = name if name is not None else self.name
        label = f"Pearson R = {self.pearson_r:.3f}"
        if name:
            label = f"{name} ({label})"
        self.scatter_ = ax.scatter(self.actual, self.predicted,
                                   **{"s": 14, "alpha": 0.8, "label": label,
                                      **(scatter_kwargs or {})})
        ends = np.array([min(self.actual.min(), self.predicted.min()),
                         max(self.actual.max(), self.predicted.max())])
        (self.line_,) = ax.plot(ends, ends, **{"color": "0.5", "linestyle": "--",
                                               "linewidth": 1, **(line_kwargs or {})})
        ax.set_xlabel("Actual change in test loss (retrained)")
        ax.set_ylabel("Predicted change in test loss")
        # leave-one-out changes are O(1/n): keep tick labels short with a shared exponent
        ax.ticklabel_format(axis="both", style="sci", scilimits=(-2, 3))
        ax.legend(loc="upper left")
        self.ax_, self.figure_ = ax, fig
        return self

    @classmethod
    def from_predictions(cls, predicted, actual, *, train_indices=None, name=None, ax=None,
                         **plot_kwargs) -> "LeaveOneOutDisplay":
        """Plot predicted against actual leave-one-out changes computed elsewhere.

        Parameters
        ----------
        predicted, actual : array-like of shape (n_rows,)
        train_indices : array-like, default=None
        name : str, default=None
        ax : matplotlib Axes, default=None
        **plot_kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        LeaveOneOutDisplay
        """
        return cls(predicted, actual, train_indices=train_indices, name=name).plot(
            ax=ax, **plot_kwargs)

    @classmethod
    def from_estimator(cls, estimator, X, y, X_test, y_test, *, top_k: int = 50,
                       method: str = "influence", train_indices=None, refit_params=None,
                       n_jobs=None, name=None, ax=None, plot_kwargs: dict | None = None,
                       **options) -> "LeaveOneOutDisplay":
        """Predict, then retrain without the most influential rows, and plot.

        The change is that of the total loss over the test points given (one point in
        the paper).  The ``top_k`` rows with the largest predicted change in magnitude are
        retrained without, one at a time (:func:`~skinfluence.validation.loo_retrain`,
        warm-started).

        Parameters
        ----------
        estimator : fitted estimator
            Fitted on ``(X, y)``: a skinfluence estimator or a scikit-learn one that
            :func:`skinfluence.explain` supports.
        X, y : training data
        X_test, y_test : test point(s)
        top_k : int, default=50
            How many rows to retrain without.
        method : {"influence", "newton"}, default="influence"
            The estimate plotted (:meth:`~skinfluence.Influence.loo_effect`).
        train_indices : array-like of int, default=None
            Retrain without these rows instead of the ``top_k`` most influential.
        refit_params : dict, default=None
            Set on each retrained clone; defaults to ``{"tol": 1e-10}`` since removing one
            row moves the fit by O(1/n).
        n_jobs : int, default=None
            Parallel retraining.
        name : str, default=None
            Legend name (default: ``method``).
        ax : matplotlib Axes, default=None
        plot_kwargs : dict, default=None
            Passed to :meth:`plot`.
        **options
            Engine options.

        Returns
        -------
        LeaveOneOutDisplay
        """
        engine, _ = influence_engine(estimator, X, y, **options)
        if train_indices is None:
            if not (isinstance(top_k, (int, np.integer)) and top_k >= 2):
                raise ValueError(f"top_k must be an integer >= 2, got {top_k!r}.")
            first = engine.loo_effect(X_test, y_test).sum(axis=1)
            rows = np.argsort(-np.abs(first), kind="stable")[:top_k]
        else:
            rows = np.asarray(train_indices, dtype=np.intp)
        predicted = engine.loo_effect(X_test, y_test, method=method,
                                      train_indices=rows).sum(axis=1)
        refit_params = {"tol": 1e-10} if refit_params is None else refit_params
        actual = loo_retrain(estimator, X, y, rows, X_test, y_test, refit_params=refit_params,
                             n_jobs=n_jobs).loss_change.sum(axis=1)
        display = cls(predicted, actual, train_indices=rows,
                      name=name if name is not None else method)
        return display.plot(ax=ax, **(plot_kwargs or {}))


# -------------------------------------------------------------------------------------
# Fig. 6: fixing mislabeled examples
# -------------------------------------------------------------------------------------
class LabelFixingDisplay:
    """Test accuracy and flipped labels found vs share of training data checked.

    The paper's Fig. 6, for the output of
    :func:`skinfluence.cleaning.simulate_label_fixing`: on the left the test accuracy
    after fixing the flipped labels found among the checked rows, on the right the share
    of all flipped labels found; one curve per ranking (mean, with the standard deviation
    over repeats as error bars).

    Parameters
    ----------
    fractions : array-like of shape (n_fractions,)
        Shares of the training rows checked.
    found : dict of str -> array-like of shape (n_repeats, n_fractions)
        Share of flipped rows found, per ranking.
    accuracy : dict of str -> array-like of shape (n_repeats, n_fractions)
        Test accuracy after fixing, per ranking.
    accuracy_clean : float, default=None
        Test accuracy with every label correct (drawn as a dashed line).

    Attributes
    ----------
    axes_ : ndarray of two matplotlib Axes
        Accuracy (left) and flips found (right).
    ax_ : matplotlib Axes
        ``axes_[0]``.
    figure_ : matplotlib Figure
    accuracy_lines_, found_lines_ : dict of str -> matplotlib Line2D
        The curve of each ranking on each panel.
    """

    def __init__(self, fractions, found: dict, accuracy: dict, *,
                 accuracy_clean: float | None = None):
        self.fractions = np.asarray(fractions, dtype=np.float64).ravel()
        if set(found) != set(accuracy):
            raise ValueError("found and accuracy must have the same rankings.")
        self.found = {k: np.atleast_2d(np.asarray(v, dtype=np.float64)) for k, v in found.items()}
        self.accuracy = {k: np.atleast_2d(np.asarray(v, dtype=np.float64))
                         for k, v in accuracy.items()}
        for name in self.found:
            for what, values in (("found", self.found[name]), ("accuracy", self.accuracy[name])):
                if values.shape[1] != self.fractions.size:
                    raise ValueError(
                        f"{what}[{name!r}] has {values.shape[1]} columns for "
                        f"{self.fractions.size} fractions.")
        self.accuracy_clean = accuracy_clean

    @classmethod
    def from_result(cls, result, *, ax=None, **plot_kwargs) -> "LabelFixingDisplay":
        """Plot the Bunch returned by :func:`~skinfluence.cleaning.simulate_label_fixing`."""
        display = cls(result.fractions, result.found, result.accuracy,
                      accuracy_clean=result.get("accuracy_clean"))
        return display.plot(ax=ax, **plot_kwargs)

    @classmethod
    def from_estimator(cls, estimator, X_train, y_train, X_test, y_test, *, ax=None,
                       plot_kwargs: dict | None = None, **simulation) -> "LabelFixingDisplay":
        """Run :func:`~skinfluence.cleaning.simulate_label_fixing` and plot it.

        Parameters
        ----------
        estimator : unfitted estimator (a template, cloned for every fit)
        X_train, y_train : training data with its true labels
        X_test, y_test : held-out data
        ax : pair of matplotlib Axes, default=None
        plot_kwargs : dict, default=None
            Passed to :meth:`plot`.
        **simulation
            ``flip_fraction``, ``fractions``, ``rankings``, ``n_repeats``,
            ``random_state``, ``warm_start``, ``n_jobs``.

        Returns
        -------
        LabelFixingDisplay
            Also keeps the whole simulation result as ``result_``.
        """
        from .cleaning import simulate_label_fixing

        result = simulate_label_fixing(estimator, X_train, y_train, X_test, y_test,
                                       **simulation)
        display = cls.from_result(result, ax=ax, **(plot_kwargs or {}))
        display.result_ = result
        return display

    def plot(self, ax=None, *, errorbar_kwargs: dict | None = None) -> "LabelFixingDisplay":
        """Draw both panels.

        Parameters
        ----------
        ax : sequence of two matplotlib Axes, default=None
            Accuracy and flips-found panels; a new 1 x 2 figure when None.
        errorbar_kwargs : dict, default=None
            Passed to every ``ax.errorbar``.

        Returns
        -------
        self : LabelFixingDisplay
        """
        plt = _pyplot()
        if ax is None:
            fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        else:
            axes = np.asarray(ax, dtype=object).ravel()
            if axes.size != 2:
                raise ValueError("LabelFixingDisplay.plot needs two Axes (accuracy, found).")
            fig = axes[0].figure
        percent = 100 * self.fractions
        self.accuracy_lines_, self.found_lines_ = {}, {}
        for name in self.found:
            for panel, values, store in ((axes[0], self.accuracy[name], self.accuracy_lines_),
                                         (axes[1], self.found[name], self.found_lines_)):
                container = panel.errorbar(
                    percent, values.mean(axis=0), yerr=values.std(axis=0),
                    **{"marker": "o", "markersize": 4, "capsize": 3, "label": name,
                       **(errorbar_kwargs or {})})
                store[name] = container.lines[0]
        if self.accuracy_clean is not None:
            axes[0].axhline(self.accuracy_clean, color="0.5", linestyle="--", linewidth=1,
                            label="all labels correct")
        axes[0].set_ylabel("Test accuracy")
        axes[1].set_ylabel("Fraction of flipped labels found")
        for panel in axes:
            panel.set_xlabel("Training data checked (%)")
            panel.legend(loc="best")
        self.axes_, self.ax_, self.figure_ = np.asarray(axes, dtype=object), axes[0], fig
        return self


# -------------------------------------------------------------------------------------
# Fig. 1 / 4: the most helpful and harmful training images
# -------------------------------------------------------------------------------------
def _image_shape(n_features: int, image_shape) -> tuple[int, ...]:
    if image_shape is not None:
        image_shape = tuple(int(s) for s in image_shape)
        if int(np.prod(image_shape)) != n_features:
            raise ValueError(
                f"image_shape {image_shape} holds {int(np.prod(image_shape))} values, but "
                f"rows have {n_features} features.")
        return image_shape
    side = int(round(np.sqrt(n_features)))
    if side * side != n_features:
        raise ValueError(
            f"Rows of {n_features} features are not square images; pass image_shape.")
    return (side, side)


class InfluentialExamplesDisplay:
    """A test image beside its most helpful and most harmful training images.

    Scores are the paper's ``I_up,loss(z_train, z_test)`` (positive = harmful: removing
    the row would lower the test loss; negative = helpful).

    Parameters
    ----------
    test_image : array-like of shape (n_features,)
    helpful_images, harmful_images : array-like of shape (n_examples, n_features)
        Most helpful first / most harmful first.
    helpful_scores, harmful_scores : array-like of shape (n_examples,)
    test_label : object, default=None
    helpful_labels, harmful_labels : array-like of shape (n_examples,), default=None
    helpful_indices, harmful_indices : array-like of shape (n_examples,), default=None
        Training row positions, shown in the titles.
    image_shape : tuple of int, default=None
        Shape to draw each row as; a square is assumed when None.

    Attributes
    ----------
    figure_ : matplotlib Figure
    axes_ : ndarray of matplotlib Axes of shape (2, n_examples + 1)
        Row 0: the test image, then the helpful images; row 1: the harmful images
        (``axes_[1, 0]`` is left empty).
    ax_ : matplotlib Axes or None
        The Axes given to :meth:`plot`, whose area the grid fills.
    images_ : list of matplotlib AxesImage
    """

    def __init__(self, test_image, helpful_images, harmful_images, helpful_scores,
                 harmful_scores, *, test_label=None, helpful_labels=None, harmful_labels=None,
                 helpful_indices=None, harmful_indices=None, image_shape=None):
        self.test_image = np.asarray(test_image, dtype=np.float64).ravel()
        self.image_shape = _image_shape(self.test_image.size, image_shape)
        self.helpful_images = np.atleast_2d(np.asarray(helpful_images, dtype=np.float64))
        self.harmful_images = np.atleast_2d(np.asarray(harmful_images, dtype=np.float64))
        self.helpful_scores = np.asarray(helpful_scores, dtype=np.float64).ravel()
        self.harmful_scores = np.asarray(harmful_scores, dtype=np.float64).ravel()
        for kind, images, scores in (("helpful", self.helpful_images, self.helpful_scores),
                                     ("harmful", self.harmful_images, self.harmful_scores)):
            if images.shape[1] != self.test_image.size or images.shape[0] != scores.size:
                raise ValueError(
                    f"{kind}_images has shape {images.shape}; expected ({scores.size}, "
                    f"{self.test_image.size}) to match {kind}_scores and test_image.")
        self.test_label = test_label
        self.helpful_labels, self.harmful_labels = helpful_labels, harmful_labels
        self.helpful_indices, self.harmful_indices = helpful_indices, harmful_indices

    @classmethod
    def from_estimator(cls, estimator, X_train, y_train, x_test, y_test, *,
                       n_examples: int = 5, image_shape=None, ax=None,
                       plot_kwargs: dict | None = None,
                       **options) -> "InfluentialExamplesDisplay":
        """Rank the training images by influence on one test image, and plot.

        Parameters
        ----------
        estimator : fitted estimator
            Fitted on ``(X_train, y_train)`` (a skinfluence estimator, a pipeline ending
            with one, or a scikit-learn model :func:`skinfluence.explain` supports).
        X_train : array-like of shape (n_train, n_features)
            The training images, one per row, as fitted.
        y_train : array-like of shape (n_train,)
        x_test : array-like of shape (n_features,) or (1, n_features)
        y_test : label, or array-like of shape (1,)
        n_examples : int, default=5
            Images per row of the grid.
        image_shape : tuple of int, default=None
        ax : matplotlib Axes, default=None
        plot_kwargs : dict, default=None
            Passed to :meth:`plot`.
        **options
            Engine options.

        Returns
        -------
        InfluentialExamplesDisplay
            Also keeps every training row's score as ``scores_``.
        """
        X_train = np.asarray(X_train)
        x_test = np.asarray(x_test).reshape(1, -1)
        y_test = np.atleast_1d(np.asarray(y_test))
        if y_test.shape != (1,):
            raise ValueError("InfluentialExamplesDisplay explains one test image at a time.")
        if not (isinstance(n_examples, (int, np.integer)) and 1 <= n_examples <= len(X_train)):
            raise ValueError(f"n_examples must be an integer in 1..{len(X_train)}, "
                             f"got {n_examples!r}.")
        engine, transform = influence_engine(estimator, X_train, y_train, **options)
        scores = engine.influence(transform(x_test), y_test)[:, 0]
        harmful = np.argsort(-scores, kind="stable")[:n_examples]
        helpful = np.argsort(scores, kind="stable")[:n_examples]
        y_train = np.asarray(y_train)
        display = cls(
            x_test[0], X_train[helpful], X_train[harmful], scores[helpful], scores[harmful],
            test_label=y_test[0], helpful_labels=y_train[helpful],
            harmful_labels=y_train[harmful], helpful_indices=helpful,
            harmful_indices=harmful, image_shape=image_shape)
        display.scores_ = scores
        return display.plot(ax=ax, **(plot_kwargs or {}))

    def _grid_axes(self, ax, n_cols: int):
        plt = _pyplot()
        if ax is None:
            fig, axes = plt.subplots(2, n_cols, figsize=(1.6 * n_cols, 3.8), squeeze=False)
            return fig, axes
        # fill the given Axes' area with a grid of inset Axes, and hide the host
        fig = ax.figure
        ax.set_axis_off()
        width, height = 1.0 / n_cols, 0.5
        axes = np.empty((2, n_cols), dtype=object)
        for r in range(2):
            bottom = 0.5 if r == 0 else 0.0  # helpful row on top
            for c in range(n_cols):
                # leave room above each image for its two-line title
                axes[r, c] = ax.inset_axes([(c + 0.04) * width, bottom, 0.92 * width,
                                            0.72 * height])
        return fig, axes

    def _draw(self, axis, image, title, cmap):
        picture = axis.imshow(image.reshape(self.image_shape), cmap=cmap)
        axis.set_title(title, fontsize=8)
        axis.set_xticks([])
        axis.set_yticks([])
        return picture

    @staticmethod
    def _title(labels, indices, j, score):
        parts = []
        if indices is not None:
            parts.append(f"#{int(np.asarray(indices)[j])}")
        if labels is not None:
            parts.append(f"y={np.asarray(labels)[j]}")
        return ", ".join(parts) + f"\nI={score:+.3g}"

    def plot(self, ax=None, *, cmap: str = "gray_r") -> "InfluentialExamplesDisplay":
        """Draw the grid: the test image, the helpful row above, the harmful row below.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Its area is filled with the grid (the Axes itself is hidden); a new figure
            when None.
        cmap : str, default="gray_r"

        Returns
        -------
        self : InfluentialExamplesDisplay
        """
        n = max(len(self.helpful_scores), len(self.harmful_scores))
        fig, axes = self._grid_axes(ax, n + 1)
        self.images_ = []
        label = "" if self.test_label is None else f", y={self.test_label}"
        self.images_.append(self._draw(axes[0, 0], self.test_image, f"test{label}", cmap))
        axes[1, 0].set_axis_off()
        for j, score in enumerate(self.helpful_scores):
            title = self._title(self.helpful_labels, self.helpful_indices, j, score)
            self.images_.append(self._draw(axes[0, j + 1], self.helpful_images[j], title, cmap))
        for j, score in enumerate(self.harmful_scores):
            title = self._title(self.harmful_labels, self.harmful_indices, j, score)
            self.images_.append(self._draw(axes[1, j + 1], self.harmful_images[j], title, cmap))
        # the empty cell under the test image says how to read the grid
        axes[1, 0].text(0.5, 0.5, "top: most helpful\nbottom: most harmful\n\nI = I_up,loss\n(> 0: harmful)",
                        ha="center", va="center", fontsize=7, transform=axes[1, 0].transAxes)
        for r, count in ((0, len(self.helpful_scores)), (1, len(self.harmful_scores))):
            for c in range(count + 1, n + 1):
                axes[r, c].set_axis_off()
        self.figure_, self.axes_, self.ax_ = fig, axes, ax
        return self

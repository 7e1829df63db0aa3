"""Warnings raised by skinfluence."""

__all__ = ["InfluenceWarning", "IndefiniteHessianWarning", "NotConvergedWarning"]


class InfluenceWarning(UserWarning):
    """Base class of skinfluence's warnings."""


class IndefiniteHessianWarning(InfluenceWarning):
    """The Hessian was singular or indefinite; the message says what damping was added."""


class NotConvergedWarning(InfluenceWarning):
    """The fitted parameters are not a stationary point, or an iterative solve stopped early."""

"""Registry of experiments, in registration order."""

from __future__ import annotations

from fisherlab.experiments.base import Experiment

__all__ = ["all_experiments", "get", "names", "register", "unregister"]

_REGISTRY: dict[str, Experiment] = {}


def register(experiment: Experiment) -> Experiment:
    """Register ``experiment`` under its name and return it.

    Raises
    ------
    TypeError
        If ``experiment`` is not an :class:`Experiment`.
    ValueError
        If another experiment with the same name is registered already.
    """
    if not isinstance(experiment, Experiment):
        raise TypeError(f"expected an Experiment, got {type(experiment).__name__}")
    existing = _REGISTRY.get(experiment.name)
    if existing is not None and existing is not experiment:
        raise ValueError(f"an experiment named {experiment.name!r} is registered already")
    if not hasattr(experiment.config_class, "preset"):
        raise TypeError(
            f"config_class of {experiment.name!r} must define classmethod preset(quick, seed)"
        )
    _REGISTRY[experiment.name] = experiment
    return experiment


def unregister(name: str) -> None:
    """Remove the experiment ``name`` (no error if absent); mainly for tests."""
    _REGISTRY.pop(name, None)


def get(name: str) -> Experiment:
    """Return the experiment registered as ``name``.

    Raises
    ------
    ValueError
        If no experiment has that name; the message lists the known names.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(_REGISTRY) or "(none)"
        raise ValueError(f"unknown experiment {name!r}; known experiments: {known}") from None


def names() -> list[str]:
    """Return the names of all registered experiments, in registration order."""
    return list(_REGISTRY)


def all_experiments() -> list[Experiment]:
    """Return all registered experiments, in registration order."""
    return list(_REGISTRY.values())

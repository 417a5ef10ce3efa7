"""Problem.batches: the checks of a pass over tensor data run once per state of the model
and data, and run again whenever that state changes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import fisherlab as fl


def _problem(dropout: bool = False) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    layers = [nn.Linear(4, 5), nn.Tanh()]
    if dropout:
        layers.append(nn.Dropout(0.5))
    layers.append(nn.Linear(5, 3))
    model = nn.Sequential(*layers).double().eval()
    return model, torch.randn(6, 4, dtype=torch.float64), torch.randint(0, 3, (6,))


def _count_forwards(model: nn.Module) -> list[int]:
    calls = [0]
    model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_repeated_passes_skip_the_checking_forward():
    model, X, y = _problem()
    problem = fl.Curvature(model, fl.likelihoods.Categorical(), X, y)
    calls = _count_forwards(model)
    first = list(problem.batches())
    after_first = calls[0]
    second = list(problem.batches())
    assert after_first == 1  # the checking forward of the one batch
    assert calls[0] == after_first  # the second pass checks nothing again
    assert all(
        torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        for a, b in zip(first, second, strict=True)
    )


def test_loaders_are_checked_on_every_pass():
    model, X, y = _problem()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=3)
    problem = fl.Curvature(model, fl.likelihoods.Categorical(), loader)
    calls = _count_forwards(model)
    list(problem.batches())
    list(problem.batches())
    assert calls[0] == 4  # two batches, two passes


def test_changed_input_data_is_checked_again():
    model, X, y = _problem()
    problem = fl.Curvature(model, fl.likelihoods.Categorical(), X, y)
    op = problem.ggn(form="operator")
    v = torch.ones(op.shape[0], dtype=torch.float64)
    op @ v
    X[0, 0] = float("nan")
    with pytest.raises(ValueError, match="input data X"):
        op @ v


def test_changed_labels_are_checked_again():
    model, X, y = _problem()
    problem = fl.Curvature(model, fl.likelihoods.Categorical(), X, y)
    problem.gradient()
    y[0] = 7
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\]"):
        problem.gradient()


def test_a_module_switched_to_training_mode_is_checked_again():
    model, X, y = _problem(dropout=True)
    problem = fl.Curvature(model, fl.likelihoods.Categorical(), X, y)
    problem.gradient()
    model.train()
    with pytest.raises(ValueError, match="[Dd]ropout"):
        problem.gradient()


def test_changed_parameters_are_checked_again():
    model, X, y = _problem()
    problem = fl.Curvature(model, fl.likelihoods.Categorical(), X, y)
    problem.gradient()
    with torch.no_grad():
        model[0].weight.data.fill_(float("inf"))  # through .data: no version bump
    with pytest.raises(ValueError, match="finite|NaN or inf"):
        problem.gradient()

"""Synthetic per-seed summaries of tuned optimizer runs (balles-fig5-4, B.2, B.3 claims tests)."""


def summary(log10_final, acc, *, lr=0.1, interior=True, min_loss=None, shrinkage=None):
    """One (problem, method) summary with per-seed values (3 seeds)."""
    out = {
        "lr": lr,
        "lr_interior": interior,
        "log10_final_train_loss": list(log10_final),
        "max_test_acc": list(acc),
        "min_train_loss": list(min_loss if min_loss is not None else [10**x for x in log10_final]),
    }
    if shrinkage is not None:
        out["shrinkage"] = list(shrinkage)
    return out


def around(x, d=0.01):
    """Three seeds spread by ``d`` around ``x``."""
    return [x - d, x, x + d]


def set_value(results, problem, method, key, values):
    """Replace one entry of a (problem, method) summary."""
    results["problems"][problem][method][key] = values

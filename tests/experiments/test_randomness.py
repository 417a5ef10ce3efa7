"""The experiments draw random numbers only from explicit generators seeded from the run.

A source check over every experiment module: no call of torch's or NumPy's global random
functions, no torch sampling function without ``generator=``, and ``torch.manual_seed``
only inside :func:`fisherlab.experiments.common.seeded` (which restores the global state).
"""

import ast
from pathlib import Path

import pytest

import fisherlab.experiments

PACKAGE = Path(fisherlab.experiments.__file__).parent
MODULES = sorted(PACKAGE.rglob("*.py"))

#: torch functions that draw from a generator (the global one unless ``generator=``)
TORCH_SAMPLERS = {
    "rand", "randn", "randint", "randperm", "normal", "bernoulli", "multinomial", "poisson",
}  # fmt: skip
#: global-state functions of torch and numpy.random
GLOBAL_STATE = {"manual_seed", "seed", "set_rng_state", "initial_seed"}
#: numpy.random names that make an explicit generator (everything else uses global state)
NUMPY_CONSTRUCTORS = {"default_rng", "RandomState", "Generator", "SeedSequence", "PCG64"}


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def global_random_calls(source: str) -> list[str]:
    """The calls in ``source`` that draw from or seed a global random generator."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        keywords = {k.arg for k in node.keywords}
        head, _, last = name.rpartition(".")
        if head == "torch" and last in TORCH_SAMPLERS and "generator" not in keywords:
            found.append(f"line {node.lineno}: {name} without generator=")
        elif head in ("torch", "torch.random", "torch.cuda") and last in GLOBAL_STATE:
            found.append(f"line {node.lineno}: {name}")
        elif head in ("np.random", "numpy.random") and last not in NUMPY_CONSTRUCTORS:
            found.append(f"line {node.lineno}: {name}")
        elif name in ("random.random", "random.seed", "random.shuffle", "random.choice"):
            found.append(f"line {node.lineno}: {name}")
    return found


def test_the_check_finds_global_random_calls():
    source = (
        "torch.manual_seed(0)\n"
        "x = torch.randn(3)\n"
        "y = torch.randn(3, generator=g)\n"
        "np.random.seed(1)\n"
        "r = np.random.default_rng(0)\n"
        "z = r.normal(size=3)\n"
    )
    assert global_random_calls(source) == [
        "line 1: torch.manual_seed",
        "line 2: torch.randn without generator=",
        "line 4: np.random.seed",
    ]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_experiment_module_uses_a_global_generator(path):
    found = global_random_calls(path.read_text(encoding="utf-8"))
    if path == PACKAGE / "common.py":  # seeded(): manual_seed inside fork_rng
        found = [f for f in found if not f.endswith(": torch.manual_seed")]
    assert not found, f"{path.relative_to(PACKAGE)}: " + "; ".join(found)

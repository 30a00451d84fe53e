"""Golden examples of every function (krm_functions/<function>/examples/<case>/),
each also run a second time on its own output to prove idempotency."""

from pathlib import Path

import pytest

import krm_functions
from krm_functions.krmfn.testing import check, discover
from krm_functions.registry import REGISTRY

CASES = discover(Path(krm_functions.__file__).parent)


def test_every_function_has_examples():
    with_examples = {case.function for case in CASES}
    for kind in REGISTRY.kinds():
        folder = kind_folder(kind)
        assert folder in with_examples, f"{kind}: no golden examples in krm_functions/{folder}/examples/"
        assert (Path(krm_functions.__file__).parent / folder / "README.md").exists(), f"{kind}: no README.md"


def kind_folder(kind: str) -> str:
    """Config kind -> function folder: ModelSource -> model_source."""
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(kind))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_golden_example(case):
    check(REGISTRY, case)

"""Fuzzing every function's config and items: the contract holds for any input.

Each case starts from a golden example and mutates its config or its items (a value of
another type, a removed or unknown field, an empty or huge value). Whatever the input:
no exception escapes the runner, a failed run writes no items, every error is one line
naming a resource or a field, and a successful run is deterministic and idempotent.
Seeded (derandomized), so CI runs the same cases every time; `make fuzz` runs more.
"""

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import krm_functions
from krm_functions.krmfn import yamlio
from krm_functions.krmfn.runner import run
from krm_functions.krmfn.testing import discover
from krm_functions.registry import REGISTRY

CASES = discover(Path(krm_functions.__file__).parent)
SEEDS = [(yamlio.load((c.path / "config.yaml").read_bytes()),
          yamlio.load_all((c.path / "input.yaml").read_text()) if (c.path / "input.yaml").exists() else [])
         for c in CASES]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "1000"))

VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=False), st.just(2.0),
    st.text(max_size=20), st.just("x" * 5000), st.just("$(X)"), st.just("--flag"),
    st.sampled_from(["--tensor-parallel-size", "--pipeline-parallel-size", "--tp-size", "--num-shard"]),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.just({}), st.just([]),
)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, prefix + (index,))


def _mutate(root, path, how, value):
    if not path:
        return value if how == "replace" else root
    parent = root
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if how == "replace":
        parent[last] = value
    elif how == "delete":
        del parent[last]
    elif how == "add" and isinstance(parent, dict):
        parent[f"fuzz{len(parent)}"] = value
    elif how == "wrap":
        parent[last] = [parent[last]]
    return root


@st.composite
def mutated_cases(draw):
    config, items = draw(st.sampled_from(SEEDS))
    doc = yamlio.load(yamlio.dump({"config": config, "items": items}))  # a deep copy
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p[:1] in (("config",), ("items",)) and p[:2] != ("config", "apiVersion")
                 and p[:2] != ("config", "kind")]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        doc = _mutate(doc, path, draw(st.sampled_from(["replace", "delete", "add", "wrap"])), draw(VALUES))
    return doc.get("config"), doc.get("items")


def _contract(config, items):
    text = yamlio.dump({"apiVersion": "config.kubernetes.io/v1", "kind": "ResourceList",
                        "items": items if isinstance(items, list) else [], "functionConfig": config})
    out, results, ok = run(REGISTRY, text)  # raises on a bug: that fails the test
    for result in results:
        assert "\n" not in result.message, result.message
        if result.severity == "error":
            # Problems of the ResourceList itself say so ("input: ...", "functionConfig: ...").
            assert result.resourceRef or result.field or result.message.split(":")[0] in ("input", "functionConfig"), \
                f"error names neither resource nor field: {result.message}"
            assert not result.message.startswith("internal error"), result.message
    if not ok:
        assert yamlio.load_all(out)[0]["items"] == [], "a failed run wrote items"
        return
    again, _, ok_again = run(REGISTRY, text)
    assert ok_again and again == out, "not deterministic"
    rerun, rerun_results, ok_rerun = run(REGISTRY, yamlio.dump({**yamlio.load(out), "functionConfig": config}))
    assert ok_rerun, [r.line() for r in rerun_results]
    assert yamlio.load(rerun)["items"] == yamlio.load(out)["items"], "not idempotent"


@settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated_cases())
def test_every_function_keeps_its_contract_on_mutated_input(case):
    config, items = case
    _contract(config, items)


@pytest.mark.parametrize("index", range(len(SEEDS)), ids=[c.id for c in CASES])
def test_the_seeds_keep_the_contract(index):
    _contract(*SEEDS[index])

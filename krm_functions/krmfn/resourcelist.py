"""ResourceList in and out (KRM Functions Specification), or a bare YAML stream."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import yaml

from . import yamlio
from .kubeobject import KubeObject
from .results import ERROR, FunctionError, Result

API_VERSION = "config.kubernetes.io/v1"
ACCEPTED_API_VERSIONS = (API_VERSION, "config.kubernetes.io/v1beta1")


@dataclass
class ResourceList:
    items: list[KubeObject]
    function_config: Optional[dict] = None
    results: list[Result] = field(default_factory=list)
    bare: bool = False  # input was a plain multi-document stream


def _problem(message: str) -> FunctionError:
    return FunctionError(Result(message, ERROR))


def parse(text: str | bytes) -> ResourceList:
    """Parse a ResourceList, or a bare stream of objects (local development)."""
    try:
        docs = yamlio.load_krm_all(text)
    except yamlio.InputRefused as err:
        raise _problem(f"input: refused: {err}") from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise _problem(f"input: malformed YAML{where}: {err.problem or err.context}") from None
    except yaml.YAMLError as err:
        raise _problem(f"input: malformed YAML: {err}") from None
    if len(docs) == 1 and isinstance(docs[0], dict) and docs[0].get("kind") == "ResourceList":
        rl = docs[0]
        if rl.get("apiVersion") not in ACCEPTED_API_VERSIONS:
            raise _problem(f"input: ResourceList apiVersion must be one of {', '.join(ACCEPTED_API_VERSIONS)}, "
                           f"got {rl.get('apiVersion')!r}")
        raw_items = rl.get("items")
        if raw_items is None:
            raw_items = []
        if not isinstance(raw_items, list):
            raise _problem("input: ResourceList.items must be a list")
        config = rl.get("functionConfig")
        if config is not None and not isinstance(config, dict):
            raise _problem("input: ResourceList.functionConfig must be a mapping")
        return ResourceList(_objects(raw_items, "items"), config)
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "ResourceList":
            raise _problem("input: a ResourceList must be the only document of the stream")
    return ResourceList(_objects(docs, "document"), None, bare=True)


def _objects(raw: list, what: str) -> list[KubeObject]:
    problems = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            problems.append(Result(f"input: {what}[{i}] is not a mapping (got {type(item).__name__})"))
        elif not item.get("apiVersion") or not item.get("kind"):
            problems.append(Result(f"input: {what}[{i}] is not a Kubernetes object: apiVersion and kind are required"))
    if problems:
        raise FunctionError(*problems)
    return [KubeObject(item) for item in raw]


def serialize(rl: ResourceList) -> str:
    """The output document. `items` is always present, even when empty."""
    if rl.bare:
        return yamlio.dump_all(o.data for o in rl.items) if rl.items else ""
    out: dict[str, Any] = {"apiVersion": API_VERSION, "kind": "ResourceList",
                           "items": [o.data for o in rl.items]}
    if rl.results:
        out["results"] = [r.to_dict() for r in rl.results]
    return yamlio.dump(out)

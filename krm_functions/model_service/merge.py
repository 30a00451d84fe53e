"""ModelService over BaseConfig, like a strategic merge patch.

Precedence: the ModelService wins. Containers, env, ports, pod volumes and
volumeMounts merge by name; a container's `args` replaces the BaseConfig's
and `extraArgs` appends to them; `resources` merges per field; any other
container field the ModelService sets replaces the BaseConfig's.
"""

from __future__ import annotations

import copy

BY_NAME = ("env", "ports", "volumeMounts")


def merge_named(base: list, overrides: list, merge_item=None) -> list:
    """Entries of `overrides` replace (or merge into) same-named entries of `base`, else append."""
    out = [copy.deepcopy(b) for b in base or []]
    for item in overrides or []:
        for i, existing in enumerate(out):
            if existing.get("name") == item.get("name"):
                out[i] = merge_item(existing, item) if merge_item else copy.deepcopy(item)
                break
        else:
            out.append(copy.deepcopy(item))
    return out


def merge_container(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if key == "extraArgs":
            out["args"] = list(out.get("args") or []) + list(value)
        elif key in BY_NAME:
            out[key] = merge_named(out.get(key) or [], value)
        elif key == "resources":
            resources = out.setdefault("resources", {})
            for part, amounts in value.items():
                if isinstance(amounts, dict) and isinstance(resources.get(part, {}), dict):
                    resources.setdefault(part, {}).update(amounts)
                else:  # not a quantity map (claims): replaced
                    resources[part] = copy.deepcopy(amounts)
        else:
            out[key] = copy.deepcopy(value)
    return out


def merge_pod(pod_spec: dict, containers: list, init_containers: list = ()) -> None:
    """Merge ModelService containers into a BaseConfig pod spec, in place."""
    if containers:
        pod_spec["containers"] = merge_named(pod_spec.get("containers") or [], containers, merge_container)
    if init_containers:
        pod_spec["initContainers"] = merge_named(pod_spec.get("initContainers") or [], list(init_containers),
                                                 merge_container)

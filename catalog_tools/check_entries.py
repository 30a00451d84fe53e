"""Render every catalog entry with the real kustomize engine (functions in
containers) and check it: strict schemas, pinned images matching the servers
table, no unrendered $(VAR) placeholders. `make validate` runs this with progress.
"""

from __future__ import annotations

import re
import sys
import time

from krm_functions import pod_security, tables
from krm_functions.krmfn import KubeObject
from krm_functions.render.function import unset_variables

from .catalog import Entry, entries
from .render import ROOT, RenderError, render
from .validate import Validator



def image_problems(image: str) -> list[str]:
    tag = image.rpartition(":")[2] if ":" in image.split("/")[-1] else ""
    if "@sha256:" in image:
        return []
    if not tag:
        return [f"image {image} has no tag"]
    if tag == "latest" or tag == "nightly":
        return [f"image {image} uses the moving tag :{tag}"]
    return []


# Object names the API server accepts (k8s.io/apimachinery validation): a DNS-1035 label for
# Services, a DNS-1123 label for Namespaces, a DNS-1123 subdomain for the rest.
DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS_1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def name_problems(obj: KubeObject) -> list[str]:
    name = obj.name
    if obj.kind == "Service" and obj.group == "":
        rule, limit, what = DNS_1035_LABEL, 63, "a DNS-1035 label (lower case letters, digits, '-'; a letter first)"
    elif obj.kind == "Namespace" and obj.group == "":
        rule, limit, what = DNS_1123_LABEL, 63, "a DNS-1123 label (lower case letters, digits, '-')"
    else:
        rule, limit, what = DNS_1123_SUBDOMAIN, 253, "a DNS-1123 subdomain (lower case letters, digits, '-', '.')"
    if not rule.match(name) or len(name) > limit:
        return [f"{obj.kind}/{name}: metadata.name must be {what} of at most {limit} characters"]
    return []


def security_problems(obj: KubeObject) -> list[str]:
    """Server pods carry the hardening their servers-table row asks for (pod_security)."""
    problems = []
    for tmpl in obj.pod_templates():
        server = tmpl.labels.get(tables.SERVER_LABEL)
        if not server:
            continue
        where = f"{obj.kind}/{obj.name} {tmpl.path}"
        containers = (tmpl.spec.get("initContainers") or []) + tmpl.containers()
        for key, value in pod_security.POD_LABELS.items():
            if tmpl.labels.get(key) != value:
                problems.append(f"{where}: pod label {key}={value} missing (components/network-policy selects by it)")
        annotations = obj.get("metadata", "annotations", default=None) or {}
        if obj.kind != "InferenceService":  # its runtime carries them
            for key, value in pod_security.checkov_annotations(tables.server(server)).items():
                if annotations.get(key) != value:
                    problems.append(f"{obj.kind}/{obj.name}: metadata.annotations.{key} is not {value!r} (pod_security)")
        if obj.kind in ("ServingRuntime", "ClusterServingRuntime"):
            # No pod-level fields in a runtime: its containers carry them; the
            # InferenceService's predictor carries the token setting.
            problems += [f"{where}: {p}" for p in pod_security.problems({}, containers, tables.server(server), calls_api=True)]
        elif obj.kind == "InferenceService":
            problems += [f"{where}: {p}" for p in pod_security.problems(tmpl.spec, [], tables.server(server))]
        else:
            problems += [f"{where}: {p}" for p in pod_security.problems(tmpl.spec, containers, tables.server(server))]
    return problems


def container_problems(obj: KubeObject, merged_env: frozenset = frozenset()) -> list[str]:
    """merged_env: env var names another object adds to these containers (KServe merges
    an InferenceService's model env into its runtime's container)."""
    problems = []
    for tmpl in obj.pod_templates():
        for c in (tmpl.spec.get("initContainers") or []) + tmpl.containers():
            where = f"{obj.kind}/{obj.name} {tmpl.path} container {c.get('name', 'kserve-container')}"
            if c is not tmpl.model:  # a KServe model takes its image from the runtime
                problems += [f"{where}: {p}" for p in image_problems(str(c.get("image", "")))]
            problems += [f"{where}: $({var}) is never defined: an unrendered placeholder"
                         for _, _, var in unset_variables(c, merged_env)]
            server = tmpl.labels.get(tables.SERVER_LABEL)
            if not server:
                continue
            row = tables.server(server)
            # The server container and its known sidecars run the images the table pins.
            want = row["image"] if c.get("name") == row["containerName"] else row.get("sidecarImages", {}).get(c.get("name"))
            if want and c.get("image") != want:
                problems.append(f"{where}: image {c.get('image')} differs from the servers table's {want}")
    return problems


def check(entry: Entry, validator: Validator) -> list[str]:
    """Problems of one entry, one line each."""
    try:
        docs = render(ROOT / entry.path)
    except RenderError as err:
        return [f"{entry.path}: {line}" for line in err.stderr.strip().splitlines()]
    problems = [f"{entry.path}: {p}" for p in validator.validate_all(docs)]
    objs = [KubeObject(doc) for doc in docs]
    model_env: dict[str, frozenset] = {}  # runtime name -> env its InferenceServices' models add
    for obj in objs:
        if obj.kind == "InferenceService":
            runtime = obj.get("spec", "predictor", "model", "runtime")
            names = {e.get("name") for e in obj.get("spec", "predictor", "model", "env", default=[]) or []}
            model_env[runtime] = model_env.get(runtime, frozenset()) | names
    for obj in objs:
        merged = model_env.get(obj.name, frozenset()) if obj.kind in ("ServingRuntime", "ClusterServingRuntime") else frozenset()
        problems += [f"{entry.path}: {p}" for p in container_problems(obj, merged) + security_problems(obj)
                     + name_problems(obj)]
    if not any(tables.SERVER_LABEL in str(doc) for doc in docs):
        problems.append(f"{entry.path}: no server workload rendered")
    return problems


def main() -> int:
    validator = Validator()
    found = entries()
    failed = 0
    for n, entry in enumerate(found, 1):
        start = time.perf_counter()
        problems = check(entry, validator)
        status = "ok" if not problems else f"{len(problems)} problem(s)"
        print(f"[{n}/{len(found)}] {entry.path}: {status} ({time.perf_counter() - start:.1f}s)", flush=True)
        for p in problems:
            print(f"    {p}")
        failed += bool(problems)
    for line in dict.fromkeys(validator.unvalidated):
        print(f"    {line}")
    print(f"{len(found) - failed} of {len(found)} entries valid")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""The Render function: one call applies every intent of an entry.

An intent is a local-config object of this API group (an Accelerator, a ModelSource, an
Autoscaling, ...) that a Component or the entry contributes as a resource, not as a
transformer. Render validates each against its function's schema and applies them in a
fixed order, whatever order the Components were listed in:

    ModelService -> Accelerator -> Spot -> ModelSource -> Autoscaling -> Monitoring -> Benchmark

(workloads first, then what runs them, then what reads their accelerators and args; the
Benchmark last, sized by the Accelerator's memory fit).
Intents stay in the output, marked local-config: kustomize drops them from what it
prints, and an overlay can still patch one and render again (README, Customize an entry).

Then it pins server images: a container whose image is a servers-table row's name
(`image: vllm`) or one of its sidecars' (`image: jetstream-http`) gets the image that row
pins, so a server's image is written in one place (krm_functions/data/servers.yaml).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Iterable, Iterator

from .. import API_VERSION, tables
from ..krmfn import Context, Function, FunctionError, KubeObject
from ..krmfn import config as configlib
from ..krmfn.kubeobject import LOCAL_ANNOTATIONS

ORDER = ("ModelService", "Accelerator", "Spot", "ModelSource", "Autoscaling", "Monitoring", "Benchmark")
# $(VAR) as the kubelet expands it in command and args ($$(VAR) is a literal).
VAR_REF = re.compile(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
# Set on the pods by their controller, not in the manifest (LeaderWorkerSet).
INJECTED_ENV = {"LWS_LEADER_ADDRESS", "LWS_GROUP_SIZE", "LWS_WORKER_INDEX", "LWS_LEADER_NAME"}
HOW_TO_SET = {"MAX_MODEL_LEN": "set spec.contextLength on the ModelSource intent (or env MAX_MODEL_LEN)",
              "MODEL_ID": "add a ModelSource intent (or set env MODEL_ID)",
              "SERVED_MODEL_NAME": "add a ModelSource intent (or set env SERVED_MODEL_NAME)"}
LOCAL_CONFIG = LOCAL_ANNOTATIONS[0]

SPEC_SCHEMA = {"type": "object", "additionalProperties": False, "properties": {}}


def intents(items: Iterable[KubeObject], kind: str) -> list[KubeObject]:
    return [o for o in items if o.api_version == API_VERSION and o.kind == kind]


def unset_variables(container: dict, also_defined: Iterable[str] = ()) -> Iterator[tuple[str, int, str]]:
    """(command or args, index, VAR) of each $(VAR) in the container's command line that
    neither its env, nor its controller (INJECTED_ENV), nor `also_defined` sets."""
    defined = ({e.get("name") for e in container.get("env") or [] if isinstance(e, dict)}
               | INJECTED_ENV | set(also_defined))
    for key in ("command", "args"):
        for i, word in enumerate(container.get(key) or []):
            for var in VAR_REF.findall(str(word)):
                if var not in defined:
                    yield key, i, var


def symbolic_images() -> dict[str, str]:
    """Image name in a base -> the image the servers table pins for it."""
    pinned = {}
    for name, row in tables.table("servers").items():
        pinned[name] = row["image"]
        pinned.update(row.get("sidecarImages") or {})
    return pinned


def pin_images(items: Iterable[KubeObject]) -> None:
    pinned = symbolic_images()
    for obj in items:
        for tmpl in obj.pod_templates():
            for c in tmpl.containers() + (tmpl.spec.get("initContainers") or []):
                if isinstance(c, dict) and c.get("image") in pinned:
                    c["image"] = pinned[c["image"]]


def check_variables(ctx: Context) -> None:
    """A $(VAR) no env defines reaches the server as those literal characters: fail here."""
    for obj in ctx.items:
        if obj.kind in ("ServingRuntime", "ClusterServingRuntime"):
            continue  # its env comes from the InferenceService that uses it
        for tmpl in obj.pod_templates():
            init = [(f"{tmpl.spec_path}.initContainers[{i}]", c) for i, c in enumerate(tmpl.spec.get("initContainers") or [])]
            main = [(tmpl.container_path(c.get("name", "kserve-container")), c) for c in tmpl.containers()]
            for path, c in init + main:
                for key, i, var in unset_variables(c):
                    ctx.error(f"$({var}) is never set, so the server would get it literally: "
                              f"{HOW_TO_SET.get(var, f'set env {var} on the container')}", obj, f"{path}.{key}[{i}]")


def make(functions: dict[str, Function]) -> Function:
    """The Render function over the registry's functions (passed in: functions never import each other)."""

    def transform(ctx: Context, spec: dict) -> None:
        unmarked = [o for o in ctx.items if o.api_version == API_VERSION and o.kind in ORDER
                    and o.annotations.get(LOCAL_CONFIG) != "true"]
        for obj in unmarked:
            ctx.error(f'an intent must be marked {LOCAL_CONFIG}: "true" (else it would be applied to the cluster)',
                      obj, f"metadata.annotations.{LOCAL_CONFIG}")
        if unmarked:
            return
        facts: dict = {}
        for intent in intents(ctx.items, "ModelSource"):
            context = (intent.get("spec", "contextLength", default=None))
            if context is not None:
                facts["contextLength"] = context  # the Accelerator's memory fit, before ModelSource sets it
        for kind in ORDER:
            fn = functions[kind]
            for intent in intents(list(ctx.items), kind):
                config = configlib.validate(fn.schema, intent.data, intent.ref)
                step = Context(ctx.items, intent.ref, facts=facts, functions=ctx.functions or functions)
                try:
                    fn.transform(step, config["spec"])
                except FunctionError as err:
                    step.results.extend(err.results)
                # Problems raised without an object are the intent's own.
                ctx.results.extend(r if r.resourceRef else dataclasses.replace(r, resourceRef=intent.ref)
                                   for r in step.results)
                if step.failed:
                    return
        pin_images(ctx.items)  # after ModelService, whose templates name images too
        check_variables(ctx)

    return Function(
        kind="Render",
        summary="apply every intent (Accelerator, ModelSource, Autoscaling, ...) found in the input, in a fixed order",
        spec_schema=SPEC_SCHEMA,
        example={},
        transform=transform,
    )


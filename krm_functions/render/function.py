"""The Render function: one call applies every intent of an entry.

An intent is a local-config object of this API group (an Accelerator, a ModelSource, an
Autoscaling, ...) that a Component or the entry contributes as a resource, not as a
transformer. Render validates each against its function's schema and applies them in a
fixed order, whatever order the Components were listed in:

    ModelService -> Accelerator -> Spot -> ModelSource -> Autoscaling -> Monitoring

(workloads first, then what runs them, then what reads their accelerators and args).
Intents stay in the output, marked local-config: kustomize drops them from what it
prints, and an overlay can still patch one and render again (README, Customize an entry).
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

from .. import API_VERSION
from ..krmfn import Context, Function, FunctionError, KubeObject
from ..krmfn import config as configlib
from ..krmfn.kubeobject import LOCAL_ANNOTATIONS

ORDER = ("ModelService", "Accelerator", "Spot", "ModelSource", "Autoscaling", "Monitoring")
LOCAL_CONFIG = LOCAL_ANNOTATIONS[0]

SPEC_SCHEMA = {"type": "object", "additionalProperties": False, "properties": {}}


def intents(items: Iterable[KubeObject], kind: str) -> list[KubeObject]:
    return [o for o in items if o.api_version == API_VERSION and o.kind == kind]


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

    return Function(
        kind="Render",
        summary="apply every intent (Accelerator, ModelSource, Autoscaling, ...) found in the input, in a fixed order",
        spec_schema=SPEC_SCHEMA,
        example={},
        transform=transform,
    )


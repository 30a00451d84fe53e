"""Spot: schedule the server pods onto a provider's spot (preemptible) capacity."""

from __future__ import annotations

from .. import tables
from ..krmfn import Context, Function, FunctionError, PodTemplate
from ..workloads import TARGET_SCHEMA, add_toleration, targets

SPEC_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["provider"],
    "properties": {
        "provider": {"type": "string", "description": "A provider of the accelerators table (gke, ...)."},
        **TARGET_SCHEMA,
    },
}


def apply_spot(tmpl: PodTemplate, provider: dict, name: str) -> None:
    """The provider's spot node selector and tolerations (accelerators table, `spot`)."""
    if "spot" not in provider:
        raise FunctionError.at(None, "spec.provider", f"provider {name} has no spot capacity in the accelerators table")
    tmpl.map_field("nodeSelector").update(provider["spot"]["nodeSelector"])
    for toleration in provider["spot"].get("tolerations", []):
        add_toleration(tmpl.spec, toleration)


def transform(ctx: Context, spec: dict) -> None:
    provider = tables.provider(spec["provider"])
    for target in targets(ctx, spec):
        apply_spot(target.template, provider, spec["provider"])


FUNCTION = Function(
    kind="Spot",
    summary="schedule the server pods onto the provider's spot capacity (node selector + tolerations)",
    spec_schema=SPEC_SCHEMA,
    example={"provider": "gke"},
    transform=transform,
)

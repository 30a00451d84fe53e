"""Spot: schedule the server pods onto a provider's spot (preemptible) capacity."""

from __future__ import annotations

from .. import tables
from ..krmfn import Context, Function
from ..workloads import TARGET_SCHEMA, apply_spot, targets

SPEC_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["provider"],
    "properties": {
        "provider": {"type": "string", "description": "A provider of the accelerators table (gke, ...)."},
        **TARGET_SCHEMA,
    },
}


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

"""Spot: schedule the server pods onto a provider's spot (preemptible) capacity."""

from __future__ import annotations

from .. import tables
from ..krmfn import Context, Function, PodTemplate
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


def apply_spot(tmpl: PodTemplate, provider: dict) -> None:
    """The provider's spot node selector and tolerations (accelerators table, `spot`)."""
    tmpl.map_field("nodeSelector").update(provider["spot"]["nodeSelector"])
    for toleration in provider["spot"]["tolerations"]:
        add_toleration(tmpl.spec, toleration)


def transform(ctx: Context, spec: dict) -> None:
    provider = tables.provider(spec["provider"])
    for target in targets(ctx, spec):
        apply_spot(target.template, provider)


FUNCTION = Function(
    kind="Spot",
    summary="schedule the server pods onto the provider's spot capacity (node selector + tolerations)",
    spec_schema=SPEC_SCHEMA,
    example={"provider": "gke"},
    transform=transform,
)

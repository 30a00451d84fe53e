"""Monitoring: have Prometheus scrape the model server's metrics endpoint.

Generates, next to every server workload, one scrape object named after it:
a GKE Managed Prometheus PodMonitoring, or a prometheus-operator PodMonitor or
ServiceMonitor. Where the server serves metrics (port name, path) comes from the
servers table; the mechanics live in krm_functions/scrape.py (Autoscaling uses them too).
"""

from __future__ import annotations

from ..krmfn import Context, Function
from ..scrape import DEFAULT_INTERVAL, GMP, OPERATOR, STACK_KINDS, check_interval, scrape_kind, scrape_object, scrape_targets
from ..workloads import TARGET_SCHEMA

SPEC_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "stack": {"enum": list(STACK_KINDS), "default": GMP,
                  "description": "Which Prometheus collects the metrics: gke-managed-prometheus (a PodMonitoring, "
                                 "monitoring.googleapis.com/v1) or prometheus-operator (a PodMonitor, or a "
                                 "ServiceMonitor, monitoring.coreos.com/v1)."},
        "kind": {"enum": [k for kinds in STACK_KINDS.values() for k in kinds],
                 "description": "Scrape object to generate; default: PodMonitoring for gke-managed-prometheus, "
                                "PodMonitor for prometheus-operator. ServiceMonitor (prometheus-operator only) "
                                "scrapes through the Service that selects the workload's pods."},
        "interval": {"type": "string", "default": DEFAULT_INTERVAL,
                     "description": "Scrape interval, a Prometheus duration (15s, 1m, ...)."},
        **TARGET_SCHEMA,
    },
}

EXAMPLE = {"stack": OPERATOR, "kind": "PodMonitor", "interval": "30s"}


def transform(ctx: Context, spec: dict) -> None:
    check_interval(spec["interval"])
    kind = scrape_kind(spec)
    for st in scrape_targets(ctx, spec):
        ctx.add(scrape_object(ctx, st, kind, spec["interval"]))
        ctx.info(f"{kind}/{st.obj.name} scrapes port {st.port} path {st.path} of {st.obj.kind}/{st.obj.name} "
                 f"every {spec['interval']}")


FUNCTION = Function(
    kind="Monitoring",
    summary="scrape the model server's metrics: a PodMonitoring (GKE Managed Prometheus), PodMonitor or ServiceMonitor",
    spec_schema=SPEC_SCHEMA,
    example=EXAMPLE,
    transform=transform,
)

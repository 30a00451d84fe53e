"""Scrape mechanics shared by the Monitoring and Autoscaling functions: which pods serve
metrics where (servers table), and the scrape object (PodMonitoring, PodMonitor,
ServiceMonitor) for them."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Optional

from .krmfn import ERROR, Context, FunctionError, KubeObject, PodTemplate, Result
from .workloads import ServerTarget, selects, targets

GMP = "gke-managed-prometheus"
OPERATOR = "prometheus-operator"
# Stack -> the kinds it offers, default first.
STACK_KINDS = {GMP: ("PodMonitoring",), OPERATOR: ("PodMonitor", "ServiceMonitor")}
API_VERSIONS = {
    "PodMonitoring": "monitoring.googleapis.com/v1",
    "PodMonitor": "monitoring.coreos.com/v1",
    "ServiceMonitor": "monitoring.coreos.com/v1",
}
DEFAULT_INTERVAL = "15s"

# Labels the LeaderWorkerSet controller puts on every pod of a group; the leader is worker 0.
KSERVE_ISVC_LABEL = "serving.kserve.io/inferenceservice"  # on every predictor pod
LWS_NAME = "leaderworkerset.sigs.k8s.io/name"
LWS_WORKER_INDEX = "leaderworkerset.sigs.k8s.io/worker-index"
# Workload labels copied onto generated objects.
COPIED_LABEL_PREFIXES = ("app.kubernetes.io/", "serving-catalog.dev/")
# Workload kinds whose pods can be selected (and scraped) by a label selector.
SELECTABLE = {("apps", "Deployment"), ("apps", "StatefulSet"), ("leaderworkerset.x-k8s.io", "LeaderWorkerSet")}

# A Prometheus duration, as prometheus-operator's CRDs spell it (units in order), not empty.
DURATION_PATTERN = r"^(?=[0-9])(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$"

KSERVE_MESSAGE = ("a ServingRuntime is a template, not pods: monitor the InferenceService that uses it")


@dataclass
class ScrapeTarget:
    """One server workload, seen as a metrics endpoint."""

    obj: KubeObject
    template: PodTemplate  # the template of the pods that serve metrics (a LeaderWorkerSet's leader)
    server_name: str
    server: dict
    selector: dict  # a LabelSelector that selects exactly those pods
    pod_labels: dict  # the labels those pods carry: the template's and the controller's
    port: str  # name of the container port that serves metrics
    port_number: int
    path: str

    @property
    def namespace(self) -> Optional[str]:
        return self.obj.namespace

    @property
    def match_labels(self) -> dict:
        return self.selector.get("matchLabels") or {}


def scrape_targets(ctx: Context, spec: dict, kserve_message: str = KSERVE_MESSAGE) -> list[ScrapeTarget]:
    """One ScrapeTarget per server workload the config selects (see workloads.targets)."""
    by_workload: dict[int, list[ServerTarget]] = {}
    for target in targets(ctx, spec):
        by_workload.setdefault(id(target.obj), []).append(target)
    found = []
    for group in by_workload.values():
        obj = group[0].obj
        if obj.kind == "InferenceService":
            found.append(_kserve_scrape_target(ctx, group[0]))
            continue
        if group[0].is_kserve:
            raise FunctionError.at(obj, "kind", kserve_message)
        if (obj.group, obj.kind) not in SELECTABLE:
            raise FunctionError.at(obj, "kind", f"cannot select the pods of a {obj.kind}: expected a "
                                   "Deployment, StatefulSet or LeaderWorkerSet")
        # A LeaderWorkerSet's metrics are on the leader: the workers only lend it their devices.
        # Without a leaderTemplate the leader is made from the workerTemplate.
        target = next((t for t in group if t.template.role == "leader"), group[0])
        found.append(_scrape_target(target))
    return found


def _scrape_target(target: ServerTarget) -> ScrapeTarget:
    obj, tmpl = target.obj, target.template
    if obj.kind == "LeaderWorkerSet":
        leader = {LWS_NAME: obj.name, LWS_WORKER_INDEX: "0"}
        selector, pod_labels = {"matchLabels": leader}, {**tmpl.labels, **leader}
    else:
        raw = obj.get("spec", "selector")
        if not isinstance(raw, dict) or not (raw.get("matchLabels") or raw.get("matchExpressions")):
            raise FunctionError.at(obj, "spec.selector", f"a {obj.kind} needs a pod selector")
        selector = {k: copy.deepcopy(raw[k]) for k in ("matchLabels", "matchExpressions") if raw.get(k)}
        pod_labels = dict(tmpl.labels)
    port, path = target.server["metrics"]["port"], target.server["metrics"]["path"]
    number, declared = None, []
    for container in tmpl.containers():
        for p in container.get("ports") or []:
            declared.append(f"{p.get('name', 'unnamed')}:{p.get('containerPort')}")
            if p.get("name") == port:
                number = p.get("containerPort")
    if number is None:
        raise FunctionError.at(obj, f"{tmpl.spec_path}.containers",
                               f"no container declares the port named {port!r}"
                               + f", where {target.server_name} serves metrics at {path}; scraping selects the port "
                               f"by name (declared ports: {', '.join(declared) or 'none'})")
    return ScrapeTarget(obj, tmpl, target.server_name, target.server, selector, pod_labels, port, number, path)


def _kserve_scrape_target(ctx: Context, target: ServerTarget) -> ScrapeTarget:
    """An InferenceService's predictor pods carry KServe's label; the metrics port is
    declared by the ServingRuntime the predictor's model names."""
    obj, tmpl = target.obj, target.template
    name = obj.get("spec", "predictor", "model", "runtime")
    if not name:
        raise FunctionError.at(obj, "spec.predictor.model.runtime", "not set: name the ServingRuntime whose "
                               "container ports give the metrics port")
    runtime = next((o for o in ctx.items if o.kind in ("ServingRuntime", "ClusterServingRuntime")
                    and o.group == "serving.kserve.io" and o.name == name), None)
    if runtime is None:
        raise FunctionError.at(obj, "spec.predictor.model.runtime",
                               f"ServingRuntime {name!r} is not among the objects: its container ports name the "
                               f"metrics port (include the runtime in the kustomization)")
    port, path = target.server["metrics"]["port"], target.server["metrics"]["path"]
    number = next((p.get("containerPort") for c in runtime.get("spec", "containers", default=[]) or []
                   for p in c.get("ports") or [] if p.get("name") == port), None)
    if number is None:
        raise FunctionError.at(runtime, "spec.containers", f"no container port named {port!r}, where "
                               f"{target.server_name} serves metrics at {path}")
    selector = {KSERVE_ISVC_LABEL: obj.name}
    return ScrapeTarget(obj, tmpl, target.server_name, target.server, {"matchLabels": selector},
                        {**tmpl.labels, **selector}, port, number, path)


def target_label(label: str) -> str:
    """The Prometheus label a pod label becomes (prometheus-operator's podTargetLabels sanitising)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", label)


def metadata(obj: KubeObject) -> dict:
    """Metadata of an object generated for a workload: its name, namespace and catalog labels."""
    meta: dict = {"name": obj.name}
    if obj.namespace:
        meta["namespace"] = obj.namespace
    labels = {k: v for k, v in obj.labels.items() if k.startswith(COPIED_LABEL_PREFIXES)}
    if labels:
        meta["labels"] = labels
    return meta


def scrape_object(ctx: Context, st: ScrapeTarget, kind: str, interval: str = DEFAULT_INTERVAL) -> dict:
    """The PodMonitoring, PodMonitor or ServiceMonitor that scrapes one server workload."""
    endpoint = {"port": st.port, "path": st.path, "interval": interval}
    # prometheus-operator: copy the selector's labels onto the series, so that queries
    # (Autoscaling's KEDA trigger, dashboards) can pick this workload's pods by them.
    pod_target_labels = list(st.match_labels)
    if kind == "PodMonitoring":
        spec: dict = {"selector": copy.deepcopy(st.selector), "endpoints": [endpoint]}
    elif kind == "PodMonitor":
        spec = {"selector": copy.deepcopy(st.selector), "podMetricsEndpoints": [endpoint]}
    elif kind == "ServiceMonitor":
        service, service_port = _service(ctx, st)
        if service_port.get("name"):
            endpoint = {"port": service_port["name"], **{k: v for k, v in endpoint.items() if k != "port"}}
        else:  # an unnamed (single) Service port: select the pods' port instead
            endpoint = {"targetPort": st.port, **{k: v for k, v in endpoint.items() if k != "port"}}
        spec = {"selector": {"matchLabels": dict(service.labels)}, "endpoints": [endpoint]}
    else:
        raise ValueError(f"unknown scrape kind {kind}")
    if kind != "PodMonitoring" and pod_target_labels:
        spec["podTargetLabels"] = pod_target_labels
    return {"apiVersion": API_VERSIONS[kind], "kind": kind, "metadata": metadata(st.obj), "spec": spec}


def _service(ctx: Context, st: ScrapeTarget) -> tuple[KubeObject, dict]:
    """The Service in front of the scraped pods, and its port that reaches the metrics port."""
    services = [s for s in ctx.items if s.kind == "Service" and s.group == "" and s.namespace == st.namespace
                and selects(s.get("spec", "selector", default=None) or {}, st.pod_labels)]
    if not services:
        raise FunctionError(Result("no Service selects its pods: a ServiceMonitor scrapes through one "
                                   "(add the Service, or use kind PodMonitor)", ERROR, st.obj.ref))
    found = []
    for service in services:
        for p in service.get("spec", "ports", default=None) or []:
            target_port = p.get("targetPort", p.get("port"))
            if target_port in (st.port, st.port_number):
                found.append((service, p))
                break
    if not found:
        names = ", ".join(f"Service/{s.name}" for s in services)
        raise FunctionError.at(services[0], "spec.ports",
                               f"no port of {names} targets the metrics port {st.port} ({st.port_number}) "
                               f"of {st.obj.kind}/{st.obj.name}")
    # Several candidates: the one named after the workload, as in the catalog, else the first.
    service, port = next(((s, p) for s, p in found if s.name == st.obj.name), found[0])
    if not service.labels:
        raise FunctionError.at(service, "metadata.labels",
                               "a ServiceMonitor selects Services by label, and this Service has none")
    if st.obj.kind == "LeaderWorkerSet" and LWS_WORKER_INDEX not in (service.get("spec", "selector") or {}):
        # Without the worker index (or a leader-only label) the Service also sends workers to Prometheus.
        worker = st.obj.get("spec", "leaderWorkerTemplate", "workerTemplate", "metadata", "labels", default=None) or {}
        if selects(service.get("spec", "selector"), {**worker, LWS_NAME: st.obj.name}):
            ctx.warning(f"also selects the worker pods of {st.obj.kind}/{st.obj.name}, which serve no metrics: "
                        f"their targets will be down (select {LWS_WORKER_INDEX}: \"0\", or use kind PodMonitor)",
                        service, "spec.selector")
    return service, port


def scrape_kind(spec: dict) -> str:
    kind = spec.get("kind") or STACK_KINDS[spec["stack"]][0]
    if kind not in STACK_KINDS[spec["stack"]]:
        raise FunctionError.at(None, "spec.kind", f"{kind} is not a {spec['stack']} object "
                               f"(use {' or '.join(STACK_KINDS[spec['stack']])})", current=kind)
    return kind


def check_interval(interval: str, path: str = "spec.interval") -> None:
    if not re.fullmatch(DURATION_PATTERN, interval):
        raise FunctionError.at(None, path, f"not a Prometheus duration: {interval!r} (e.g. 15s, 1m, 1m30s)",
                               current=interval)

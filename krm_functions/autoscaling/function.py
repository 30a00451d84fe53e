"""Autoscaling: scale the server workload on a server metric (queue depth, KV cache, batch size).

Generates, per server workload, a HorizontalPodAutoscaler (GKE Managed Prometheus
through the Custom Metrics Stackdriver Adapter, or prometheus-adapter) or a KEDA
ScaledObject, and by default the scrape object that feeds it (Monitoring's code).
Metric names, types and default targets come from the servers table.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation

from ..krmfn import Context, Function, FunctionError
from ..scrape import GMP, ScrapeTarget, metadata, scrape_object, scrape_targets, target_label
from ..workloads import TARGET_SCHEMA

PROMETHEUS_ADAPTER = "prometheus-adapter"
KEDA = "keda"
ADAPTERS = (GMP, PROMETHEUS_ADAPTER, KEDA)
# The scrape object each adapter reads from: GMP's PodMonitoring, or prometheus-operator's PodMonitor.
SCRAPE_KIND = {GMP: "PodMonitoring", PROMETHEUS_ADAPTER: "PodMonitor", KEDA: "PodMonitor"}
INTENTS = ("queue-depth", "cache-utilization", "batch-size")
# Kinds with a scale subresource that the catalog uses for servers.
SCALABLE = {("apps", "Deployment"), ("apps", "StatefulSet"), ("leaderworkerset.x-k8s.io", "LeaderWorkerSet")}

# Model servers take minutes to start (image pull, weights download and load), so scale
# up one pod a minute rather than in bursts, and wait five minutes of low load before
# giving back an accelerator.
DEFAULT_BEHAVIOR = {
    "scaleUp": {"stabilizationWindowSeconds": 0, "podsPerPeriod": 1, "periodSeconds": 60},
    "scaleDown": {"stabilizationWindowSeconds": 300, "podsPerPeriod": 1, "periodSeconds": 60},
}

# A Kubernetes quantity without sign (https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/).
QUANTITY_PATTERN = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][-+]?[0-9]+)?$"
_SUFFIXES = {"": 1, "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "k": 10**3, "M": 10**6,
             "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30,
             "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


def _direction(name: str, purpose: str) -> dict:
    d = DEFAULT_BEHAVIOR[name]
    return {
        "type": "object", "additionalProperties": False,
        "description": f"How fast to scale {purpose}: at most podsPerPeriod pods every periodSeconds, once the "
                       "metric has asked for it for stabilizationWindowSeconds.",
        "properties": {
            "stabilizationWindowSeconds": {"type": "integer", "minimum": 0, "maximum": 3600,
                                           "default": d["stabilizationWindowSeconds"],
                                           "description": "Seconds of past recommendations considered "
                                                          f"before scaling {purpose}."},
            "podsPerPeriod": {"type": "integer", "minimum": 1, "default": d["podsPerPeriod"],
                              "description": "Most pods (LeaderWorkerSet: groups) to add or remove per period."},
            "periodSeconds": {"type": "integer", "minimum": 1, "maximum": 1800, "default": d["periodSeconds"],
                              "description": "Length of the period, seconds."},
        },
    }


SPEC_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "intent": {"enum": list(INTENTS), "default": "queue-depth",
                   "description": "What to keep in check, per pod: queue-depth (requests waiting), cache-utilization "
                                  "(KV cache in use) or batch-size (requests running). The servers table names the "
                                  "metric and default target of each."},
        "metric": {"type": "string",
                   "description": "Prometheus metric to scale on instead of the intent's (one the server exports, "
                                  "a gauge); then spec.targetValue is required too."},
        "metricLabels": {"type": "object", "additionalProperties": {"type": "string"},
                         "description": "Label values that pick the metric's series (e.g. request_type: waiting); "
                                        "default: the intent's labels in the servers table when spec.metric is "
                                        "unset or is the intent's metric, none otherwise."},
        "targetValue": {"type": ["string", "number"],
                   "description": "Target value of the metric per pod (per group for a LeaderWorkerSet), a quantity "
                                  "such as \"5\" or \"800m\"; default: the intent's target in the servers table."},
        "minReplicas": {"type": "integer", "minimum": 1, "default": 1, "description": "Fewest replicas."},
        "maxReplicas": {"type": "integer", "minimum": 1, "default": 4,
                        "description": "Most replicas; must be at least minReplicas."},
        "adapter": {"enum": list(ADAPTERS), "default": GMP,
                    "description": "Who turns the metric into scaling: gke-managed-prometheus (an HPA on the Custom "
                                   "Metrics Stackdriver Adapter), prometheus-adapter (an HPA on prometheus-adapter's "
                                   "custom metrics API) or keda (a KEDA ScaledObject with a prometheus trigger)."},
        "keda": {
            "type": "object", "additionalProperties": False,
            "description": "KEDA settings (adapter keda only).",
            "properties": {
                "serverAddress": {"type": "string", "minLength": 1,
                                  "description": "URL of the Prometheus KEDA queries, e.g. "
                                                 "http://prometheus-operated.monitoring.svc:9090 (required)."},
                "query": {"type": "string", "minLength": 1,
                          "description": "PromQL returning the total over the workload's pods; KEDA divides it by "
                                         "the replicas. Default: sum(<metric>{namespace=...,<selector labels>})."},
            },
        },
        "behavior": {
            "type": "object", "additionalProperties": False,
            "description": "Scaling speed (the HPA's behavior).",
            "properties": {"scaleUp": _direction("scaleUp", "up"), "scaleDown": _direction("scaleDown", "down")},
        },
        "monitoring": {"type": "boolean", "default": True,
                       "description": "Also generate the scrape object the adapter reads: a PodMonitoring for "
                                      "gke-managed-prometheus, a PodMonitor for prometheus-adapter and keda."},
        **TARGET_SCHEMA,
    },
}

EXAMPLE = {"intent": "queue-depth", "minReplicas": 1, "maxReplicas": 8}

KSERVE_MESSAGE = ("a ServingRuntime is not scaled itself: configure autoscaling on the InferenceService "
                  "that uses it")
KSERVE_AUTOSCALER = "serving.kserve.io/autoscalerClass"


def transform(ctx: Context, spec: dict) -> None:
    _check_config(spec)
    for st in scrape_targets(ctx, spec, KSERVE_MESSAGE):
        obj = st.obj
        if obj.kind == "InferenceService":
            _kserve(ctx, spec, st, *_metric(spec, st))
            continue
        if (obj.group, obj.kind) not in SCALABLE:
            raise FunctionError.at(obj, "kind", f"a {obj.kind} cannot be autoscaled: expected a Deployment, "
                                   "StatefulSet or LeaderWorkerSet")
        metric, metric_type, target, labels = _metric(spec, st)
        if spec["monitoring"]:
            ctx.add(scrape_object(ctx, st, SCRAPE_KIND[spec["adapter"]]))
        if spec["adapter"] == KEDA:
            scaler = ctx.add(_scaled_object(ctx, spec, st, metric, target, labels))
            per = "threshold {} per replica"
        else:
            scaler = ctx.add(_hpa(spec, st, metric, metric_type, target, labels))
            per = "target {} per pod"
        ctx.info(f"{scaler.kind}/{scaler.name} scales {obj.kind}/{obj.name} on {series(metric, labels)} "
                 f"({per.format(target)})")


def _check_config(spec: dict) -> None:
    """Problems of the config alone, all at once."""
    problems = []
    if spec["minReplicas"] > spec["maxReplicas"]:
        problems.append(FunctionError.at(
            None, "spec.minReplicas",
            f"minReplicas ({spec['minReplicas']}) must not exceed maxReplicas ({spec['maxReplicas']})",
            current=spec["minReplicas"]))
    if spec["adapter"] == KEDA and not (spec.get("keda") or {}).get("serverAddress"):
        problems.append(FunctionError.at(
            None, "spec.keda.serverAddress",
            "required when adapter is keda: the URL of the Prometheus KEDA queries, "
            "e.g. http://prometheus-operated.monitoring.svc:9090"))
    if spec["adapter"] != KEDA and "keda" in spec:
        problems.append(FunctionError.at(None, "spec.keda",
                                         f"only used with adapter keda (adapter is {spec['adapter']})"))
    if "targetValue" in spec and quantity(spec["targetValue"]) <= 0:
        problems.append(FunctionError.at(None, "spec.targetValue", "must be greater than 0",
                                         current=str(spec["targetValue"])))
    if problems:
        raise FunctionError(*[r for p in problems for r in p.results])


def _metric(spec: dict, st: ScrapeTarget) -> tuple[str, str, str, dict]:
    """(metric name, Prometheus type, target per pod, label values) for one workload's server."""
    server = st.server_name
    intents = st.server.get("intents") or {}
    intent = intents.get(spec["intent"])
    if intent is None:
        raise FunctionError.at(None, "spec.intent", f"intent {spec['intent']} is not offered by server {server} "
                               f"(intents: {', '.join(intents) or 'none'})", current=spec["intent"])
    name = spec.get("metric") or intent["metric"]
    exports = {e["name"]: e["type"] for e in st.server.get("exports") or []}
    if name not in exports:
        raise FunctionError.at(None, "spec.metric", f"metric {name} is not exported by server {server} "
                               f"(exports: {', '.join(exports)})", current=name)
    if name != intent["metric"] and "targetValue" not in spec:
        raise FunctionError.at(None, "spec.targetValue",
                               f"required with spec.metric {name}: the {spec['intent']} intent's default target "
                               f"({intent['target']}) is for {intent['metric']}")
    custom_query = spec["adapter"] == KEDA and (spec.get("keda") or {}).get("query")
    if exports[name] != "gauge" and not custom_query:
        raise FunctionError.at(None, "spec.metric",
                               f"metric {name} is a {exports[name]}: autoscaling targets a per-pod gauge (with "
                               "adapter keda, a spec.keda.query can derive one, e.g. with rate() or "
                               "histogram_quantile())", current=name)
    default_labels = (intent.get("labels") or {}) if name == intent["metric"] else {}
    labels = spec.get("metricLabels", default_labels)
    return name, exports[name], str(spec.get("targetValue", intent["target"])), labels


def _matchers(labels: dict) -> list[str]:
    """PromQL label matchers: k="v"."""
    return [f"{k}={json.dumps(v)}" for k, v in labels.items()]


def series(metric: str, labels: dict) -> str:
    """The metric with its label values, as PromQL writes them: m{k="v"}."""
    return metric + ("{" + ",".join(_matchers(labels)) + "}" if labels else "")


def quantity(value: object, path: str = "spec.targetValue") -> Decimal:
    """A Kubernetes quantity ("5", "800m", "1.5k", 2) as a decimal."""
    match = re.fullmatch(QUANTITY_PATTERN, str(value))
    if not match:
        raise FunctionError.at(None, path, f"not a quantity: {value!r} (e.g. \"5\", \"800m\", \"1.5k\")",
                               current=str(value))
    number, _, suffix = match.groups()
    try:
        if suffix and suffix[0] in "eE":
            return Decimal(number + suffix)
        return Decimal(number) * Decimal(_SUFFIXES[suffix or ""])
    except InvalidOperation:
        raise FunctionError.at(None, path, f"not a quantity: {value!r}", current=str(value)) from None


def plain_number(value: object) -> str:
    """A quantity as a plain decimal ("800m" -> "0.8"), for consumers that parse floats (KEDA's threshold)."""
    return format(quantity(value).normalize(), "f")


def adapter_metric_name(adapter: str, metric: str, metric_type: str) -> str:
    """The metric's name in the custom metrics API that the HPA reads."""
    if adapter == GMP:
        # Custom Metrics Stackdriver Adapter: Cloud Monitoring's prometheus.googleapis.com/<name>/<type>, '/' -> '|'.
        return f"prometheus.googleapis.com|{metric}|{metric_type}"
    # prometheus-adapter, with the rules in the README: ':' (vLLM's namespace separator) -> '_'.
    return metric.replace(":", "_")


def behavior(spec: dict) -> dict:
    """The HPA behavior (autoscaling/v2 HorizontalPodAutoscalerBehavior)."""
    configured = spec.get("behavior") or {}
    out = {}
    for direction, defaults in DEFAULT_BEHAVIOR.items():
        b = {**defaults, **(configured.get(direction) or {})}
        out[direction] = {
            "stabilizationWindowSeconds": b["stabilizationWindowSeconds"],
            "policies": [{"type": "Pods", "value": b["podsPerPeriod"], "periodSeconds": b["periodSeconds"]}],
        }
    return out


def _scale_target_ref(st: ScrapeTarget) -> dict:
    return {"apiVersion": st.obj.api_version, "kind": st.obj.kind, "name": st.obj.name}


def metric_selector(adapter: str, labels: dict) -> dict:
    """The HPA metric's label selector: the Stackdriver adapter reads Prometheus labels
    as metric.labels.<name>; prometheus-adapter passes them to its query as they are."""
    prefix = "metric.labels." if adapter == GMP else ""
    return {"matchLabels": {prefix + k: v for k, v in labels.items()}}


def _hpa(spec: dict, st: ScrapeTarget, metric: str, metric_type: str, target: str, labels: dict) -> dict:
    identifier: dict = {"name": adapter_metric_name(spec["adapter"], metric, metric_type)}
    if labels:
        identifier["selector"] = metric_selector(spec["adapter"], labels)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(st.obj),
        "spec": {
            "scaleTargetRef": _scale_target_ref(st),
            "minReplicas": spec["minReplicas"],
            "maxReplicas": spec["maxReplicas"],
            "metrics": [{
                "type": "Pods",
                "pods": {
                    "metric": identifier,
                    "target": {"type": "AverageValue", "averageValue": target},
                },
            }],
            "behavior": behavior(spec),
        },
    }


def keda_query(ctx: Context, metric: str, st: ScrapeTarget, labels: dict) -> str:
    """sum(<metric>{<labels>,namespace="ns",<selector labels>}): the total over the workload's scraped pods.

    The selector labels are on the series because the PodMonitor copies them
    (podTargetLabels), under their sanitised names."""
    matchers = _matchers(labels)
    if st.namespace:
        matchers.append(f"namespace={json.dumps(st.namespace)}")
    else:
        ctx.warning("no namespace: the KEDA query matches the workload's labels in every namespace "
                    "(set the namespace before this function runs, or set spec.keda.query)", st.obj,
                    "metadata.namespace")
    matchers += _matchers({target_label(k): str(v) for k, v in st.match_labels.items()})
    return f"sum({metric}{{{','.join(matchers)}}})"


def _scaled_object(ctx: Context, spec: dict, st: ScrapeTarget, metric: str, target: str, labels: dict) -> dict:
    keda = spec["keda"]
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": metadata(st.obj),
        "spec": {
            "scaleTargetRef": _scale_target_ref(st),
            "minReplicaCount": spec["minReplicas"],
            "maxReplicaCount": spec["maxReplicas"],
            "triggers": [{
                "type": "prometheus",
                # AverageValue: KEDA's HPA divides the query's total by the replicas and compares to threshold.
                "metricType": "AverageValue",
                "metadata": {
                    "serverAddress": keda["serverAddress"],
                    "query": keda.get("query") or keda_query(ctx, metric, st, labels),
                    "threshold": plain_number(target),
                },
            }],
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": behavior(spec)}},
        },
    }


def _kserve(ctx: Context, spec: dict, st: ScrapeTarget, metric: str, metric_type: str, target: str,
            labels: dict) -> None:
    """KServe scales its predictor itself: with autoscalerClass keda it creates the
    ScaledObject from the predictor's autoScaling metrics (RawDeployment mode)."""
    obj = st.obj
    if spec["adapter"] != KEDA:
        raise FunctionError.at(None, "spec.adapter", f"InferenceService/{obj.name} scales through KServe's KEDA "
                               "integration: set spec.adapter: keda and spec.keda.serverAddress")
    if spec["monitoring"]:
        ctx.add(scrape_object(ctx, st, SCRAPE_KIND[KEDA]))
    obj.set_annotation(KSERVE_AUTOSCALER, "keda")
    predictor = obj.setdefault_map("spec", "predictor")
    predictor["minReplicas"], predictor["maxReplicas"] = spec["minReplicas"], spec["maxReplicas"]
    predictor["autoScaling"] = {
        "metrics": [{"type": "External", "external": {
            "metric": {"backend": "prometheus", "serverAddress": spec["keda"]["serverAddress"],
                       "query": spec["keda"].get("query") or keda_query(ctx, metric, st, labels)},
            # AverageValue: the query's total divided by the replicas, as for the HPA.
            "target": {"type": "AverageValue", "averageValue": target}}}],
        "behavior": behavior(spec),
    }
    ctx.info(f"InferenceService/{obj.name} scales through KEDA on {series(metric, labels)} "
             f"(target {target} per pod)")


FUNCTION = Function(
    kind="Autoscaling",
    summary="scale the server on queue depth, KV cache use or batch size: an HPA (GMP, prometheus-adapter) or KEDA",
    spec_schema=SPEC_SCHEMA,
    example=EXAMPLE,
    transform=transform,
)

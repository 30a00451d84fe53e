"""The shapes of the input items that functions read, checked before any function runs.

Only the fields functions read or write are constrained (Kubernetes objects carry many
more, which pass untouched): object metadata, workload replicas and group sizes, and
the pod templates of every workload kind KubeObject knows (containers and their
command, args, env, resources, volume mounts; volumes; node selectors; tolerations).
A wrong type is one error naming the resource and the field path.
"""

from __future__ import annotations

from . import config as configlib
from .kubeobject import KubeObject
from .results import FunctionError, Result

_STRING = {"type": "string"}
_STRINGS = {"type": "array", "items": _STRING}
_STRING_MAP = {"type": "object", "additionalProperties": _STRING}
_OBJECT = {"type": "object"}
_OBJECTS = {"type": "array", "items": _OBJECT}
_COUNT = {"type": "integer", "minimum": 0}

METADATA = {"type": "object", "properties": {
    "name": _STRING, "namespace": _STRING, "labels": _STRING_MAP, "annotations": _STRING_MAP}}

CONTAINER = {"type": "object", "required": ["name"], "properties": {
    "name": _STRING, "image": _STRING, "command": _STRINGS, "args": _STRINGS,
    "env": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
        "name": _STRING, "value": _STRING, "valueFrom": _OBJECT}}},
    "resources": {"type": "object", "properties": {"requests": _OBJECT, "limits": _OBJECT}},
    "volumeMounts": {"type": "array", "items": {"type": "object", "required": ["name", "mountPath"],
                                                "properties": {"name": _STRING, "mountPath": _STRING}}},
    "ports": _OBJECTS, "securityContext": _OBJECT,
    "startupProbe": _OBJECT, "readinessProbe": _OBJECT, "livenessProbe": _OBJECT,
}}

POD_SPEC_FIELDS = {
    "containers": {"type": "array", "items": CONTAINER},
    "initContainers": {"type": "array", "items": CONTAINER},
    "volumes": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {"name": _STRING}}},
    "nodeSelector": _STRING_MAP, "tolerations": _OBJECTS, "affinity": _OBJECT,
}
POD_SPEC = {"type": "object", "properties": POD_SPEC_FIELDS}
TEMPLATE = {"type": "object", "properties": {"metadata": METADATA, "spec": POD_SPEC}}
# KServe's predictor and runtime specs are pod specs with fields of their own.
KSERVE_POD = {"type": "object", "properties": {**POD_SPEC_FIELDS, "labels": _STRING_MAP, "annotations": _STRING_MAP,
                                                "model": CONTAINER | {"required": []},
                                                "workerSpec": {"type": "object", "properties": POD_SPEC_FIELDS},
                                                "minReplicas": _COUNT, "maxReplicas": _COUNT}}

# KServe's LLMInferenceService: bare pod specs, their pods' labels beside them.
LLM_WORKLOAD = {"labels": _STRING_MAP, "annotations": _STRING_MAP, "replicas": _COUNT, "template": POD_SPEC,
                "parallelism": {"type": "object", "properties": {"tensor": _COUNT}}}
LLM_SPEC = {"type": "object", "properties": {**LLM_WORKLOAD, "model": {"type": "object", "properties": {
    "uri": _STRING, "name": _STRING}}, "prefill": {"type": "object", "properties": LLM_WORKLOAD}}}


SELECTOR = {"type": "object", "properties": {"matchLabels": _STRING_MAP, "matchExpressions": _OBJECTS}}


def _item(spec: dict) -> dict:
    return {"type": "object", "properties": {"metadata": METADATA, "spec": spec}}


BY_KIND = {
    ("apps", "Deployment"): _item({"type": "object", "properties": {
        "replicas": _COUNT, "selector": SELECTOR, "template": TEMPLATE}}),
    ("apps", "StatefulSet"): _item({"type": "object", "properties": {
        "replicas": _COUNT, "selector": SELECTOR, "template": TEMPLATE}}),
    ("", "ConfigMap"): {"type": "object", "properties": {"metadata": METADATA, "data": _STRING_MAP}},
    ("", "Service"): _item({"type": "object", "properties": {"selector": _STRING_MAP, "ports": _OBJECTS}}),
    ("batch", "Job"): _item({"type": "object", "properties": {"template": TEMPLATE}}),
    ("leaderworkerset.x-k8s.io", "LeaderWorkerSet"): _item({"type": "object", "properties": {
        "replicas": _COUNT, "leaderWorkerTemplate": {"type": "object", "properties": {
            "size": {"type": "integer", "minimum": 1}, "leaderTemplate": TEMPLATE, "workerTemplate": TEMPLATE}}}}),
    ("serving.kserve.io", "InferenceService"): _item({"type": "object", "properties": {"predictor": KSERVE_POD}}),
    ("serving.kserve.io", "LLMInferenceService"): _item(LLM_SPEC),
    ("serving.kserve.io", "ServingRuntime"): _item(KSERVE_POD),
    ("serving.kserve.io", "ClusterServingRuntime"): _item(KSERVE_POD),
}
ANY = _item({})


def check(items: list[KubeObject]) -> None:
    """Raise one FunctionError with a line per misshapen field of any item."""
    problems: list[Result] = []
    for obj in items:
        schema = BY_KIND.get((obj.group, obj.kind), ANY)
        try:
            configlib.check(schema, obj.data, obj.ref)
        except FunctionError as err:
            problems += err.results
    if problems:
        raise FunctionError(*problems)

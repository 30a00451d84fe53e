"""ModelService: llm-d's ModelService as a build-time generator.

A platform owner's BaseConfig (a ConfigMap of jinja2 templates) and a model
owner's ModelService become prefill and decode Deployments and Services, an
InferencePool (inference.networking.k8s.io/v1) with its endpoint picker, an
HTTPRoute, the provider Gateway's health-check and timeout policies, and
autoscaling: the accelerator, model-artifact and autoscaling parts are the
Accelerator, ModelSource and Autoscaling functions, called through the Context
(Context.call), not imported.
"""

from __future__ import annotations

import math
import re
from typing import Optional

from .. import lora, tables
from ..krmfn import Context, Function, FunctionError, KubeObject
from ..krmfn import shapes
from ..krmfn.results import ERROR, Field, Result
from ..sources import Source, parse_uri
from ..workloads import LLM_D_ROLE_LABEL
from . import merge, templating

ROLES = ("prefill", "decode")
# BaseConfig keys: the templates a platform owner provides.
TEMPLATE_KEYS = ("prefillDeployment", "decodeDeployment", "prefillService", "decodeService", "inferencePool",
                 "eppDeployment", "eppService", "eppServiceAccount", "eppRole", "eppRoleBinding", "httpRoute",
                 "configMaps")
LOCAL_CONFIG = "config.kubernetes.io/local-config"
ROLE_LABEL, MODEL_LABEL, SERVING_LABEL = LLM_D_ROLE_LABEL, "llm-d.ai/model", "llm-d.ai/inferenceServing"

_CONTAINER = {
    "type": "object", "additionalProperties": False, "required": ["name"],
    "description": "Merged by name into the BaseConfig's container (see README: precedence).",
    "properties": {
        "name": {"type": "string"}, "image": {"type": "string"},
        "command": {"type": "array", "items": {"type": "string"}},
        "args": {"type": "array", "items": {"type": "string"}, "description": "Replaces the BaseConfig's args."},
        "extraArgs": {"type": "array", "items": {"type": "string"}, "description": "Appended to the args."},
        # The shapes the merge reads, as for any input container.
        **{key: shapes.CONTAINER["properties"][key] for key in ("env", "ports", "volumeMounts", "resources")},
    },
}
_ACCELERATOR = {
    "type": "object", "additionalProperties": False, "required": ["provider", "accelerator"],
    "properties": {"provider": {"type": "string"}, "accelerator": {"type": "string"},
                   "spot": {"type": "boolean", "default": False}},
}
_ROLE = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "replicas": {"type": "integer", "minimum": 0, "default": 1},
        "parallelism": {"type": "object", "additionalProperties": False,
                        "properties": {"tensor": {"type": "integer", "minimum": 1, "default": 1}},
                        "default": {"tensor": 1}},
        "accelerator": {**_ACCELERATOR, "description": "Default: spec.accelerator."},
        "containers": {"type": "array", "items": _CONTAINER},
        "initContainers": {"type": "array", "items": _CONTAINER},
        "volumes": {**shapes.POD_SPEC_FIELDS["volumes"],
                    "description": "Pod volumes, merged by name into the BaseConfig's."},
        "autoscaling": {
            "type": "object", "additionalProperties": False,
            "description": "An HPA for this role (Autoscaling function: intent, replicas, target).",
            "properties": {"intent": {"enum": ["queue-depth", "cache-utilization", "batch-size"]},
                           "minReplicas": {"type": "integer", "minimum": 1},
                           "maxReplicas": {"type": "integer", "minimum": 1},
                           "targetValue": {"type": "string"},
                           "adapter": {"enum": ["gke-managed-prometheus", "prometheus-adapter"]}},
        },
    },
}
SPEC_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["baseConfigRef", "routing", "modelArtifacts"],
    "properties": {
        "baseConfigRef": {"type": "object", "additionalProperties": False, "required": ["name"],
                          "properties": {"name": {"type": "string"}},
                          "description": "The BaseConfig ConfigMap among the objects (kept as local config, not output)."},
        "server": {"type": "string", "default": "vllm", "description": "Servers table row of both roles."},
        "routing": {
            "type": "object", "additionalProperties": False, "required": ["modelName", "gatewayRefs"],
            "properties": {
                "modelName": {"type": "string", "description": "The model name clients send."},
                "gatewayRefs": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "additionalProperties": False, "required": ["name"],
                    "properties": {"name": {"type": "string"}, "namespace": {"type": "string"},
                                   "sectionName": {"type": "string"}}}},
                "ports": {"type": "array", "default": [{"name": "http", "port": 8000}], "items": {
                    "type": "object", "additionalProperties": False, "required": ["name", "port"],
                    "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}},
            },
        },
        "modelArtifacts": {
            "type": "object", "additionalProperties": False, "required": ["uri"],
            "properties": {
                "uri": {"type": "string", "description": "hf://org/model, pvc://claim/path or oci://image:tag."},
                "authSecretName": {"type": "string", "default": "hf-token",
                                   "description": "Secret with the Hugging Face token (key `token`)."},
                "size": {"type": "string", "description": "Weights volume size; default from the models table."},
                "storageClassName": {"type": "string"},
                "adapters": lora.SCHEMA,
            },
        },
        "accelerator": _ACCELERATOR,
        "prefill": _ROLE,
        "decode": _ROLE,
        "endpointPicker": {
            "type": "object", "additionalProperties": False,
            "properties": {"replicas": {"type": "integer", "minimum": 1, "default": 1},
                           "containers": {"type": "array", "items": _CONTAINER}},
            "default": {"replicas": 1},
        },
    },
}

EXAMPLE = {
    "baseConfigRef": {"name": "llm-d-base"},
    "routing": {"modelName": "meta-llama/Meta-Llama-3-8B-Instruct", "gatewayRefs": [{"name": "inference-gateway"}]},
    "modelArtifacts": {"uri": "hf://meta-llama/Meta-Llama-3-8B-Instruct"},
    "accelerator": {"provider": "gke", "accelerator": "nvidia-h100-80gb"},
    "prefill": {"replicas": 1},
    "decode": {"replicas": 2, "autoscaling": {"intent": "queue-depth", "maxReplicas": 4}},
}


def transform(ctx: Context, spec: dict) -> None:
    name = ctx.config_ref.name if ctx.config_ref else ""
    if not name:
        raise FunctionError.at(None, "metadata.name", "a ModelService needs a name: it names what it generates")
    roles = [r for r in ROLES if r in spec]
    if not roles:
        raise FunctionError.at(None, "spec.decode", "neither spec.prefill nor spec.decode: nothing to serve")
    # Templates may name the namespace (RoleBinding subjects must): the config's, else default.
    namespace = (ctx.config_ref.namespace if ctx.config_ref else None) or "default"
    base, templates = _base_config(ctx, spec)
    source = parse_uri(spec["modelArtifacts"]["uri"])
    if source.scheme == "gs":
        raise FunctionError.at(None, "spec.modelArtifacts.uri", "gs:// is not an llm-d artifact source: "
                               "use hf://, pvc:// or oci://")
    model_path, mounted = _paths(source)
    values = templating.variables(name, namespace, spec, model_path, mounted)
    # The models table row, for the memory fit and the download's size.
    model_name = tables.model_for_hf_id(source.repo) if source.scheme == "hf" else None

    def render(key: str):
        if key not in templates:
            raise FunctionError.at(base, f"data.{key}", f"BaseConfig {base.name} has no {key} template, "
                                   f"which this ModelService needs")
        rendered = templating.render_yaml(templates[key], values, templating.at(base.ref, f"data.{key}"))
        wanted = list if key == "configMaps" else dict
        if not isinstance(rendered, wanted) or (wanted is list and not all(isinstance(r, dict) for r in rendered)):
            what = "a list of objects" if wanted is list else "an object"
            raise FunctionError.at(base, f"data.{key}", f"must render {what}, not {type(rendered).__name__} "
                                   f"{str(rendered)[:80]!r}")
        if isinstance(rendered, dict) and rendered.get("kind"):
            try:  # what the functions read of it has the shapes input items must have
                shapes.check([KubeObject(rendered)])
            except FunctionError as err:
                raise FunctionError(*(Result(f"renders {r.field.path if r.field else 'an object'}: {r.message}", ERROR,
                                             base.ref, Field(f"data.{key}")) for r in err.results)) from None
        return rendered

    for role in roles:
        deployment = render(f"{role}Deployment")
        _shape_role(deployment, role, spec, values, name, base, model_name)
        ctx.add(deployment)
        ctx.add(render(f"{role}Service"))
    picker = render("eppDeployment")
    _merge_pod(picker, spec["endpointPicker"].get("containers"), values, "spec.endpointPicker")
    picker.setdefault("spec", {})["replicas"] = spec["endpointPicker"]["replicas"]
    pool, route = render("inferencePool"), render("httpRoute")
    for obj in [picker] + [render(k) for k in ("eppService", "eppServiceAccount", "eppRole", "eppRoleBinding")]:
        ctx.add(obj)
    ctx.add(pool)
    ctx.add(route)
    for policy in _gateway_policies(spec, pool, route, [d for d in ctx.items if d.kind == "Deployment"]):
        ctx.add(policy)
    for extra in (render("configMaps") if "configMaps" in templates else None) or []:
        ctx.add(extra)

    _load_model(ctx, spec, source, name, roles)
    for role in roles:
        _accelerate(ctx, spec, role, values[f"{role}_deployment_name"])
        if spec[role].get("autoscaling"):
            _autoscale(ctx, spec, role, values[f"{role}_deployment_name"])
    ctx.info(f"ModelService {name}: {', '.join(roles)} serving {spec['routing']['modelName']} "
             f"behind InferencePool/{values['inference_pool_name']}")


def _gateway_policies(spec: dict, pool: dict, route: dict, deployments: list[KubeObject]) -> list[dict]:
    """What the provider's Gateway needs to health-check and time out the pool's backends
    (providers table `inferencePoolPolicies`; GKE only so far): the readiness path of the
    pool's server containers, on the pool's target port."""
    provider = (spec.get("accelerator") or spec.get("decode", {}).get("accelerator")
                or spec.get("prefill", {}).get("accelerator") or {}).get("provider")
    api = tables.provider(provider, None, "spec.accelerator.provider").get("inferencePoolPolicies") if provider else None
    if not api:
        return []
    pool_obj, route_obj = KubeObject(pool), KubeObject(route)
    ports = pool_obj.get("spec", "targetPorts", default=[]) or []
    if not ports:
        raise FunctionError.at(None, "spec.routing.ports", f"InferencePool/{pool_obj.name} has no targetPorts "
                               f"for the Gateway's health check")
    container = tables.server(spec["server"], None, "spec.server")["containerName"]
    selector = pool_obj.get("spec", "selector", "matchLabels", default={}) or {}
    ready = next((c["readinessProbe"]["httpGet"]["path"] for d in deployments for t in d.pod_templates()
                  if selector.items() <= t.labels.items() for c in t.containers()
                  if c.get("name") == container and ((c.get("readinessProbe") or {}).get("httpGet") or {}).get("path")),
                 None)
    if ready is None:
        raise FunctionError.at(None, "spec.baseConfigRef", f"no {container} container of InferencePool/{pool_obj.name}'s "
                               f"pods has an HTTP readinessProbe path for the Gateway's health check")
    timeouts = [duration_seconds((rule.get("timeouts") or {}).get("request"))
                for rule in route_obj.get("spec", "rules", default=[]) or [] if isinstance(rule, dict)]
    timeout = max([t for t in timeouts if t] or [DEFAULT_BACKEND_TIMEOUT])
    target = {"group": pool_obj.group, "kind": "InferencePool", "name": pool_obj.name}
    meta = {"name": pool_obj.name, **({"namespace": pool_obj.namespace} if pool_obj.namespace else {})}
    return [
        {"apiVersion": api, "kind": "HealthCheckPolicy", "metadata": dict(meta),
         "spec": {"targetRef": target, "default": {"config": {
             "type": "HTTP", "httpHealthCheck": {"requestPath": ready, "port": ports[0]["number"]}}}}},
        {"apiVersion": api, "kind": "GCPBackendPolicy", "metadata": dict(meta),
         "spec": {"targetRef": dict(target), "default": {"timeoutSec": timeout}}},
    ]


# A route without a request timeout: what the inferencepool chart gives GKE's backends.
DEFAULT_BACKEND_TIMEOUT = 300
_DURATION = re.compile(r"([0-9]+)(ms|h|m|s)")


def duration_seconds(value: Optional[str]) -> Optional[int]:
    """A Gateway API Duration ("300s", "1h30m", "500ms") in whole seconds, rounded up."""
    if not isinstance(value, str) or not re.fullmatch(r"([0-9]{1,5}(h|m|s|ms)){1,4}", value):
        return None
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return max(1, math.ceil(sum(int(n) * scale[unit] for n, unit in _DURATION.findall(value))))


def _base_config(ctx: Context, spec: dict) -> tuple[KubeObject, dict]:
    """The BaseConfig ConfigMap and its templates. It is input, not output: marked
    local-config, which kustomize (and `generate`) leave out; a rerun finds it again."""
    ref = spec["baseConfigRef"]["name"]
    base = next((o for o in ctx.items if o.kind == "ConfigMap" and o.group == "" and o.name == ref), None)
    if base is None:
        raise FunctionError.at(None, "spec.baseConfigRef.name", f"no ConfigMap {ref!r} among the objects "
                               f"(include the BaseConfig in the kustomization, or pass --baseconfig)")
    base.set_annotation(LOCAL_CONFIG, "true")
    data = base.get("data", default={}) or {}
    unknown = sorted(set(data) - set(TEMPLATE_KEYS))
    if unknown:
        raise FunctionError(*[Result(f"unknown BaseConfig key (known: {', '.join(TEMPLATE_KEYS)})", ERROR,
                                     base.ref, Field(f"data.{k}")) for k in unknown])
    return base, data


def _paths(source: Source) -> tuple[str, str]:
    """The model's path in its source and where the servers read it (ModelSource's layout)."""
    mount = "/models"
    if source.scheme == "hf":
        return source.repo, f"{mount}/{source.repo}"
    if source.scheme == "pvc":
        return source.path, f"{mount}/{source.path}" if source.path else mount
    return source.reference, mount


def _shape_role(deployment: dict, role: str, spec: dict, values: dict, name: str, base: KubeObject,
                model_name: Optional[str]) -> None:
    """ModelService over the BaseConfig's Deployment, and the labels everything selects on."""
    obj = KubeObject(deployment)
    if obj.kind != "Deployment":
        raise FunctionError.at(base, f"data.{role}Deployment", f"must render a Deployment, not {obj.kind or 'nothing'}")
    labels = {SERVING_LABEL: "true", MODEL_LABEL: values["sanitized_model_name"], ROLE_LABEL: role,
              tables.SERVER_LABEL: spec["server"]}
    obj.set(values[f"{role}_deployment_name"], "metadata", "name")
    obj.set(spec[role]["replicas"], "spec", "replicas")
    obj.setdefault_map("spec", "selector", "matchLabels").update(
        {k: labels[k] for k in (MODEL_LABEL, ROLE_LABEL)} | {"app.kubernetes.io/instance": name})
    pod_labels = obj.setdefault_map("spec", "template", "metadata", "labels")
    pod_labels.update(labels | {"app.kubernetes.io/instance": name})
    if model_name:
        pod_labels[tables.MODEL_LABEL] = model_name
    _merge_pod(deployment, spec[role].get("containers"), values, f"spec.{role}", spec[role].get("initContainers"))
    if spec[role].get("volumes"):
        pod_spec = obj.setdefault_map("spec", "template", "spec")
        pod_spec["volumes"] = merge.merge_named(pod_spec.get("volumes") or [], templating.render_values(
            spec[role]["volumes"], values, templating.at(None, f"spec.{role}.volumes")))


def _merge_pod(deployment: dict, containers: Optional[list], values: dict, path: str, init=None) -> None:
    where = templating.at(None, f"{path}.containers")
    pod_spec = KubeObject(deployment).setdefault_map("spec", "template", "spec")
    merge.merge_pod(pod_spec, templating.render_values(containers or [], values, where),
                    templating.render_values(init or [], values, where))


def _load_model(ctx: Context, spec: dict, source: Source, name: str, roles: list) -> None:
    """One weights volume (and download Job) for both roles, named after the ModelService."""
    artifacts = spec["modelArtifacts"]
    model_name = tables.model_for_hf_id(source.repo) if source.scheme == "hf" else None
    storage = {k: artifacts[k] for k in ("size", "storageClassName") if k in artifacts}
    ms_spec: dict = {"uri": source.uri, "name": name,
                     "workload": {"kind": "Deployment", "matchLabels": {"app.kubernetes.io/instance": name,
                                                                         SERVING_LABEL: "true"}}}
    if source.scheme == "hf":
        ms_spec.update(storage=storage, hfTokenSecret={"name": artifacts["authSecretName"]})
    if artifacts.get("adapters"):
        ms_spec["adapters"] = artifacts["adapters"]
    if model_name:  # the models table row: context length, volume size, memory fit
        ms_spec["model"] = model_name
    if source.scheme == "hf" and model_name is None and "size" not in storage:
        raise FunctionError.at(None, "spec.modelArtifacts.size", f"{source.repo} is not in the models table: "
                               "set the weights volume size")
    ctx.call("ModelSource", ms_spec, "spec.modelArtifacts")


def _accelerate(ctx: Context, spec: dict, role: str, deployment: str) -> None:
    accel = spec[role].get("accelerator") or spec.get("accelerator")
    if not accel:
        raise FunctionError.at(None, f"spec.{role}.accelerator", "no accelerator: set spec.accelerator "
                               f"or spec.{role}.accelerator")
    row = tables.accelerator(accel["provider"], accel["accelerator"], None, f"spec.{role}.accelerator")
    if row["type"] != "gpu":
        raise FunctionError.at(None, f"spec.{role}.accelerator", "llm-d prefill/decode runs on GPUs here")
    # One GPU per tensor-parallel rank: the count is the role's tensor parallelism.
    config = {**accel, "count": spec[role]["parallelism"]["tensor"],
              "workload": {"kind": "Deployment", "name": deployment}}
    ctx.call("Accelerator", config, f"spec.{role}")


def _autoscale(ctx: Context, spec: dict, role: str, deployment: str) -> None:
    config = {k: v for k, v in spec[role]["autoscaling"].items()}
    config["workload"] = {"kind": "Deployment", "name": deployment}
    if "minReplicas" not in config:
        config["minReplicas"] = max(1, spec[role]["replicas"])
    ctx.call("Autoscaling", config, f"spec.{role}.autoscaling")


FUNCTION = Function(
    kind="ModelService",
    summary="llm-d ModelService at build time: prefill/decode Deployments, InferencePool, endpoint picker, "
            "HTTPRoute, autoscaling, from a BaseConfig of jinja2 templates",
    spec_schema=SPEC_SCHEMA,
    example=EXAMPLE,
    transform=transform,
)

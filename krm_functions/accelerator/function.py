"""Accelerator: request GPUs or TPUs for the server container and schedule onto them."""

from __future__ import annotations

from typing import Optional

from .. import memory, tables
from ..krmfn import Context, Function, FunctionError
from ..workloads import (SHM_VOLUME, TARGET_SCHEMA, ServerTarget, add_mount, add_toleration, add_volume, apply_spot,
                         set_param, target_key, targets, upsert_named)

# LeaderWorkerSet places each group alone in one domain of this node label
# (kubernetes-sigs/lws api/leaderworkerset/v1: ExclusiveKeyAnnotationKey).
EXCLUSIVE_TOPOLOGY = "leaderworkerset.sigs.k8s.io/exclusive-topology"
# Dynamic Resource Allocation (Kubernetes 1.34, resource.k8s.io/v1): the pod's claim on its GPUs.
DRA_API = "resource.k8s.io/v1"
DRA_CLAIM = "gpus"
REQUEST_MODES = ("extendedResource", "dra")

SPEC_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["provider", "accelerator"],
    "properties": {
        "provider": {"type": "string", "description": "A provider of the accelerators table (gke, ...)."},
        "accelerator": {"type": "string", "description": "Accelerator name, e.g. nvidia-l4 or tpu-v5-lite-podslice."},
        "count": {"type": "integer", "minimum": 1, "description": "GPUs per pod (GPU accelerators)."},
        "topology": {"type": "string", "pattern": "^[0-9]+(x[0-9]+){1,2}$",
                     "description": "TPU slice topology, e.g. 2x4 (TPU accelerators)."},
        "spot": {"type": "boolean", "default": False, "description": "Schedule onto spot capacity."},
        "request": {"enum": list(REQUEST_MODES),
                    "description": "How pods ask for GPUs: extended resources (limits) or a DRA ResourceClaimTemplate "
                                   "(default: the provider's gpuRequest)."},
        "shmSize": {"type": "string", "default": "16Gi", "description": "Size of the /dev/shm memory volume."},
        **TARGET_SCHEMA,
    },
}

EXAMPLE = {"provider": "gke", "accelerator": "nvidia-l4", "count": 2}


def transform(ctx: Context, spec: dict) -> None:
    provider = tables.provider(spec["provider"])
    accel = tables.accelerator(spec["provider"], spec["accelerator"])
    per_pod, hosts, machine = devices(accel, spec)
    dra = request_mode(spec, provider, accel) == "dra"
    for target in targets(ctx, spec):
        _check_group(target, hosts)
        _check_vendor(target, accel)
        if dra:
            ctx.add(claim_template(target, provider, accel, per_pod))
        fit = _inject(target, spec, provider, accel, per_pod, hosts, ctx.facts, dra)
        if fit is not None:
            ctx.facts.setdefault("fits", {})[target_key(target)] = fit  # the Benchmark's load profile
            ctx.info(f"memory {fit.summary()} at context {fit.context} "
                     f"({fit.weights_gib:.1f} GiB weights per device)", target.obj)
    ctx.info(f"{accel['name']}: {per_pod} per pod, {hosts} host(s), machine type {machine}")


def devices(accel: dict, spec: dict) -> tuple[int, int, str]:
    """Devices per pod, hosts per replica and machine type, checked against the table."""
    name = accel["name"]
    if accel["type"] == "gpu":
        if "topology" in spec:
            raise FunctionError.at(None, "spec.topology", f"{name} is a GPU: set spec.count, not spec.topology")
        if "count" not in spec:
            raise FunctionError.at(None, "spec.count", f"{name} needs a GPU count per pod")
        machines = accel["machines"]
        if spec["count"] not in machines:
            offered = ", ".join(str(c) for c in machines)
            raise FunctionError.at(None, "spec.count", f"{spec['count']} x {name} is not offered "
                                   f"by any machine type (counts offered: {offered})", current=spec["count"])
        return spec["count"], 1, machines[spec["count"]]
    if "count" in spec:
        raise FunctionError.at(None, "spec.count", f"{name} is a TPU: set spec.topology, not spec.count "
                               f"(chips follow from the topology)")
    if "topology" not in spec:
        raise FunctionError.at(None, "spec.topology", f"{name} needs a slice topology")
    topologies = accel["topologies"]
    if spec["topology"] not in topologies:
        raise FunctionError.at(None, "spec.topology", f"topology {spec['topology']} is not offered for {name} "
                               f"(offered: {', '.join(topologies)})", current=spec["topology"])
    row = topologies[spec["topology"]]
    return tables.topology_chips(spec["topology"]) // row["hosts"], row["hosts"], row["machineType"]


def request_mode(spec: dict, provider: dict, accel: dict) -> str:
    """extendedResource or dra: the intent's `request`, else the provider's gpuRequest."""
    mode = spec.get("request") or provider.get("gpuRequest", "extendedResource")
    if mode == "dra":
        if accel["type"] != "gpu":
            raise FunctionError.at(None, "spec.request", f"{accel['name']} is a TPU: DRA requests GPUs here")
        if not provider.get("draDeviceClass") or not accel.get("draSelector"):
            raise FunctionError.at(None, "spec.request", f"provider {spec['provider']} names no DRA DeviceClass for "
                                   f"{accel['name']} (accelerators table: draDeviceClass, draSelector)")
    return mode


def claim_template_name(target: ServerTarget) -> str:
    return f"{target.obj.name}-{DRA_CLAIM}"


def claim_template(target: ServerTarget, provider: dict, accel: dict, per_pod: int) -> dict:
    """The ResourceClaimTemplate each pod's GPUs are claimed from: per_pod devices of the
    provider's DeviceClass that the accelerator row's CEL selector admits."""
    meta = {"name": claim_template_name(target),
            "labels": {k: v for k, v in target.obj.labels.items() if k.startswith("app.kubernetes.io/")}}
    if target.obj.namespace:
        meta["namespace"] = target.obj.namespace
    request = {"deviceClassName": provider["draDeviceClass"], "allocationMode": "ExactCount", "count": per_pod,
               "selectors": [{"cel": {"expression": accel["draSelector"]}}]}
    return {"apiVersion": DRA_API, "kind": "ResourceClaimTemplate", "metadata": meta,
            "spec": {"spec": {"devices": {"requests": [{"name": DRA_CLAIM, "exactly": request}]}}}}


def _check_vendor(target: ServerTarget, accel: dict) -> None:
    """A server image is built for one vendor's GPUs (servers table gpuVendor, default nvidia)."""
    if accel["type"] != "gpu":
        return
    image_vendor, device_vendor = target.server.get("gpuVendor", "nvidia"), accel.get("vendor", "nvidia")
    if image_vendor != device_vendor:
        family = target.server.get("variantOf", target.server_name)
        builds = [name for name, row in tables.table("servers").items()
                  if row.get("gpuVendor", "nvidia") == device_vendor and row.get("variantOf", name) == family]
        hint = f" (use the {builds[0]} server)" if builds else ""
        raise FunctionError.at(target.obj, f"{target.template.labels_path}.{tables.SERVER_LABEL}",
                               f"server {target.server_name} runs on {image_vendor} GPUs, not {accel['name']} "
                               f"({device_vendor}){hint}", current=target.server_name)


def _check_group(target: ServerTarget, hosts: int) -> None:
    obj = target.obj
    if obj.kind == "LeaderWorkerSet":
        size = obj.get("spec", "leaderWorkerTemplate", "size", default=1)
        if hosts > 1 and size != hosts:
            raise FunctionError.at(obj, "spec.leaderWorkerTemplate.size",
                                   f"group size {size} does not match the topology's {hosts} hosts "
                                   f"(one pod per TPU host)", current=size, proposed=hosts)
    elif hosts > 1:
        raise FunctionError.at(obj, "kind", f"a {hosts}-host TPU topology needs one pod per host: "
                               f"use a LeaderWorkerSet with size {hosts}, not a {obj.kind}")


def _inject(target: ServerTarget, spec: dict, provider: dict, accel: dict, per_pod: int,
            hosts: int, facts: dict, dra: bool = False) -> Optional[memory.Fit]:
    """Devices, scheduling and parallelism on one server pod template. What later steps of a
    Render call need (a model build's tensor parallelism and devices) goes in `facts`."""
    tmpl, container, server = target.template, target.container, target.server
    gpu = accel["type"] == "gpu"
    resources = container.setdefault("resources", {})
    if dra:  # the pod claims its GPUs; the container uses the claim
        resource = provider["draDeviceClass"]
        upsert_named(tmpl.list_field("resourceClaims"),
                     {"name": DRA_CLAIM, "resourceClaimTemplateName": claim_template_name(target)})
        upsert_named(resources.setdefault("claims", []), {"name": DRA_CLAIM})
    else:
        resource = accel.get("resource") or provider["gpuResource" if gpu else "tpuResource"]
        for kind in ("requests", "limits"):  # extended resources: requests must equal limits
            resources.setdefault(kind, {})[resource] = per_pod

    selector = tmpl.map_field("nodeSelector")
    selector.update(accel["nodeSelector"])
    if not gpu:
        selector[provider["tpuTopologyLabel"]] = spec["topology"]
    elif provider.get("machineTypeLabel"):  # EKS, AKS: the instance type carries the device count
        selector[provider["machineTypeLabel"]] = accel["machines"][per_pod]
    for toleration in accel.get("tolerations") or provider["gpuTolerations" if gpu else "tpuTolerations"]:
        add_toleration(tmpl.spec, toleration)
    if spec["spot"]:
        apply_spot(tmpl, provider, spec["provider"])
    if not gpu and hosts > 1:  # one group per slice: its hosts share the slice's interconnect
        target.obj.set_annotation(EXCLUSIVE_TOPOLOGY, provider["tpuSliceLabel"])

    # GPUs across nodes talk over the network: split layers across pods (pipeline)
    # and tensors within a pod. A TPU slice's interconnect spans its hosts, so
    # tensor parallelism covers every chip of the slice. Where the workers of a group
    # start the same engine as the leader (servers table multiHostWorkers), they get
    # the same sizes.
    group = target.obj.get("spec", "leaderWorkerTemplate", "size", default=1) if target.obj.kind == "LeaderWorkerSet" else 1
    parallel = server.get("parallelism") or {}
    if target.template.role == "worker" and server.get("multiHostWorkers") != "engine":
        _add_shm(tmpl, container, spec)
        return None  # the workers join the leader's Ray cluster: no engine flags
    tensor, pipeline = parallel_sizes(server, gpu, per_pod, hosts, group)
    # A model build on the server's accelerators takes the same extended resources (not a DRA claim).
    facts.setdefault("accelerators", {})[target_key(target)] = {"tensor": tensor,
                                                                "devices": {} if dra else {resource: per_pod}}
    if target.obj.kind == "LLMInferenceService":
        # KServe's templates pass spec(.prefill).parallelism.tensor as --tensor-parallel-size.
        tmpl.meta.setdefault("parallelism", {})["tensor"] = tensor
    else:
        if pipeline > 1:
            set_param(container, "pipeline", pipeline, parallel["pipeline"])
        if "tensor" in parallel:
            set_param(container, "tensor", tensor, parallel["tensor"])
    _add_shm(tmpl, container, spec)
    return None if target.template.role == "worker" else _check_memory(target, accel, tensor, pipeline,
                                                                         facts.get("contextLength"))


def parallel_sizes(server: dict, gpu: bool, per_pod: int, hosts: int, group: int) -> tuple[int, int]:
    """(tensor, pipeline) parallel sizes: GPUs of a pod in tensor, pods of a group in pipeline
    where the server can; TPU chips of every host of the slice in tensor."""
    pipeline = group if gpu and group > 1 and "pipeline" in (server.get("parallelism") or {}) else 1
    tensor = per_pod if pipeline > 1 else per_pod * (hosts if not gpu else group)
    return tensor, pipeline


def _check_memory(target: ServerTarget, accel: dict, tensor: int, pipeline: int,
                  context: Optional[int] = None) -> Optional[memory.Fit]:
    """The model and one sequence at the entry's context fit the devices, or the build fails
    with the numbers. Skipped when the pods name no model of the models table. `context`: the
    length a ModelSource intent of the same Render call will set (it runs later)."""
    model_row = tables.table("models").get(target.model_name) if target.model_name else None
    if model_row is None or "memory" not in target.server:
        return None
    context_env = target.server.get("contextLengthEnv")
    container = target.container
    if context is not None and context_env:
        container = {**container, "env": [e for e in container.get("env") or [] if e.get("name") != context_env]
                     + [{"name": context_env, "value": str(context)}]}
    fit = memory.check(target.server, model_row, accel, container, tensor, pipeline, context_env,
                       target.obj, target.container_path)
    if not fit.fits:
        path = f"{target.container_path}.env.{context_env}" if context_env else target.container_path
        raise FunctionError.at(target.obj, path, fit.problem(accel["device"]), current=fit.context)
    return fit


def _add_shm(tmpl, container: dict, spec: dict) -> None:
    """NCCL and the servers' worker processes exchange tensors through /dev/shm."""
    add_volume(tmpl, {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": spec["shmSize"]}})
    add_mount(container, {"name": SHM_VOLUME, "mountPath": "/dev/shm"})


FUNCTION = Function(
    kind="Accelerator",
    summary="request GPUs/TPUs on the server container, select and tolerate their nodes, set tensor parallelism",
    spec_schema=SPEC_SCHEMA,
    example=EXAMPLE,
    transform=transform,
)

"""Fake nodes for the local control plane, as an entry README's node-pool command makes them.

A pool is built from the tables alone: the accelerator row (its nodeSelector: the labels the
cloud or the GPU Operator put on such nodes; its resource; machine type per count or TPU
topology), the provider row (`nodePoolLabels`, `nodePoolTaints`: what the README's command
gives every node of the pool) and the machine type's vCPUs, memory and boot disk
(`machineTypes` in accelerators.yaml, each citing the cloud's page). Allocatable is capacity
less the provider's documented reservation (`reserved`). KWOK runs the nodes: they take the
annotation it manages, and no label a real node of that pool would not carry.

For the DRA provider a node carries no GPU resource: NVIDIA's DRA driver publishes a
ResourceSlice of its GPUs (productName as the accelerator row's draSelector matches it),
and the DeviceClass its chart installs.
"""

from __future__ import annotations

import json
import re
from typing import Optional

from krm_functions import tables

from . import cluster

KWOK_ANNOTATION = {"kwok.x-k8s.io/node": "fake"}
MAX_PODS = 110
# The cluster's own pool for pods that ask for no accelerator (model-load Jobs, the
# endpoint picker): the default node pool every managed cluster starts with, here of
# e2-highmem-16 machines (16 vCPUs, 128 GB): the model-build Jobs ask for 64Gi, more than a
# 64 GB machine's allocatable, and no entry README names the pool they run on.
DEFAULT_POOL = {"name": "default-pool", "cpu": 16, "memoryGiB": 128, "nodes": 2}
# The storage classes the providers table names, by the CSI driver that serves each.
STORAGE_CLASSES = {"standard-rwx": "filestore.csi.storage.gke.io", "efs-sc": "efs.csi.aws.com",
                   "azurefile-csi-premium": "file.csi.azure.com"}
DEFAULT_STORAGE_CLASS = ("standard", "rwx.csi.local")
# Generic providers have no machine type ("N x PRODUCT": a node with N GPUs) and their GPU
# servers no one size: a host as large as the clouds' 8-GPU machines (p5.48xlarge).
GENERIC_HOST = {"vCPU": 192, "memoryGiB": 2048, "bootDiskGiB": 200}


def _quantity_mi(gib: float) -> str:
    return f"{int(gib * 1024)}Mi"


def reserved(provider: dict, cpu: int, memory_gib: float) -> tuple[float, float]:
    """CPU cores and memory GiB the provider reserves (kube-reserved + eviction)."""
    rule = provider.get("reserved") or tables.table("accelerators")["reserved"]["default"]
    if "memory" in rule:
        mem_reserved = _tiered(memory_gib, rule["memory"])
    elif "memoryMB" in rule:  # decimal megabytes (AKS)
        mem_reserved = (rule["memoryMB"] + rule["memoryMBPerPod"] * MAX_PODS) * 1e6 / 2**30
    else:
        mem_reserved = (rule["memoryMiB"] + rule["memoryMiBPerPod"] * MAX_PODS) / 1024
    if "memoryMaxShare" in rule:
        mem_reserved = min(mem_reserved, memory_gib * rule["memoryMaxShare"])
    return _tiered(cpu, rule["cpu"]), mem_reserved + rule["evictionMiB"] / 1024


def boot_disk_gib(provider: dict, spec: dict) -> int:
    """The node's disk: the machine's own, else the provider's default (a size, or
    [up to vCPUs, GiB] tiers where it grows with the machine)."""
    disk = spec.get("bootDiskGiB") or provider.get("bootDiskGiB", 100)
    if isinstance(disk, list):
        return next(size for most, size in disk if spec["vCPU"] <= most)
    return disk


def _tiered(amount: float, tiers: list) -> float:
    """The share of `amount` reserved by [size, share] tiers, the first tier first."""
    total, left = 0.0, float(amount)
    for size, share in tiers:
        take = min(left, size)
        total += take * share
        left -= take
    return total


def _taint(spec: str) -> dict:
    key, rest = spec.split("=", 1) if "=" in spec else (spec.split(":")[0], ":" + spec.split(":")[1])
    value, effect = rest.split(":")
    return {"key": key, **({"value": value} if value else {}), "effect": effect}


def pool(provider_name: str, accelerator: dict, replicas: int, name: Optional[str] = None) -> tuple[str, list[dict]]:
    """(pool name, objects) for `replicas` pods of the entry's accelerator spec; the pool is
    named as the README's command names it unless `name` is given."""
    provider = tables.provider(provider_name)
    row = tables.accelerator(provider_name, accelerator["accelerator"])
    machines = tables.table("accelerators")["machineTypes"]
    if row["type"] == "tpu":
        topo = row["topologies"][accelerator["topology"]]
        machine, hosts = topo["machineType"], topo["hosts"]
        chips = tables.topology_chips(accelerator["topology"]) // hosts
        nodes = hosts * replicas
        resources = {provider["tpuResource"]: str(chips)}
        kind = "tpu"
    else:
        count = int(accelerator.get("count", 1))
        machine = row["machines"][count] if count in row["machines"] else row["machines"][str(count)]
        nodes = replicas
        resource = row.get("resource") or provider["gpuResource"] if provider.get("gpuRequest") != "dra" else None
        resources = {resource: str(count)} if resource else {}
        kind = "gpu"
    name = name or f"{accelerator['accelerator']}-pool"
    values = {"pool": name, "accelerator": accelerator["accelerator"], "machine": machine,
              "topology": accelerator.get("topology", "")}
    labels = {k: v.format(**values) for k, v in (provider.get("nodePoolLabels", {}).get(kind) or {}).items()}
    labels.update(row.get("nodeSelector") or {})
    if provider.get("tpuTopologyLabel") and kind == "tpu":
        labels[provider["tpuTopologyLabel"]] = accelerator["topology"]
    if any(machine in c["machines"] and "--spot" in c["flags"] for c in provider.get("capacity") or []):
        labels.update(provider["spot"]["nodeSelector"])
    taints = [_taint(t) for t in (provider.get("nodePoolTaints", {}).get(kind) or [])]
    spec = machines.get(machine) or GENERIC_HOST
    objects = []
    for index in range(nodes):
        node_name = f"{name}-{index}"
        objects.append(_node(node_name, provider, spec, labels, taints, resources))
        if provider.get("gpuRequest") == "dra":
            objects.append(_resource_slice(node_name, row, int(accelerator.get("count", 1))))
    return name, objects


def _node(name: str, provider: dict, spec: dict, labels: dict, taints: list, resources: dict) -> dict:
    cpu, memory = spec["vCPU"], spec["memoryGiB"]
    cpu_reserved, mem_reserved = reserved(provider, cpu, memory)
    disk = boot_disk_gib(provider, spec)
    capacity = {"cpu": str(cpu), "memory": _quantity_mi(memory), "ephemeral-storage": f"{disk}Gi",
                "pods": str(MAX_PODS), **resources}
    allocatable = {**capacity, "cpu": f"{int((cpu - cpu_reserved) * 1000)}m",
                   "memory": _quantity_mi(memory - mem_reserved), "ephemeral-storage": f"{int(disk * 0.9)}Gi"}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "annotations": dict(KWOK_ANNOTATION),
                         "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                    "kubernetes.io/arch": "amd64", **labels}},
            "spec": {"taints": taints} if taints else {},
            "status": {"capacity": capacity, "allocatable": allocatable}}


def _resource_slice(node: str, row: dict, count: int) -> dict:
    # The attributes the driver publishes for a full GPU (k8s-dra-driver-gpu v25.8+:
    # type, productName, and memory capacity; no index attribute).
    match = re.search(r"productName == '([^']+)'", row["draSelector"])
    product = match.group(1)
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
            "metadata": {"name": f"{node}-gpu.nvidia.com"},
            "spec": {"driver": "gpu.nvidia.com", "nodeName": node,
                     "pool": {"name": node, "generation": 1, "resourceSliceCount": 1},
                     "devices": [{"name": f"gpu-{i}", "attributes": {
                         "type": {"string": "gpu"}, "productName": {"string": product}},
                         "capacity": {"memory": {"value": _quantity_mi(row["memoryGiB"])}}}
                         for i in range(count)]}}


def apply(objects: list[dict]) -> None:
    nodes = [o for o in objects if o["kind"] == "Node"]
    rest = [o for o in objects if o["kind"] != "Node"]
    for node in nodes:
        # A Node's status is its own subresource: create, then set capacity there.
        status = node.pop("status")
        cluster.kubectl("apply", "-f", "-", stdin=json.dumps(node))
        cluster.kubectl("patch", "node", node["metadata"]["name"], "--subresource=status", "--type=merge",
                        "-p", json.dumps({"status": status}))
    if rest:
        cluster.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": rest}))


def delete(objects: list[dict]) -> None:
    for obj in objects:
        kind = "resourceslice" if obj["kind"] == "ResourceSlice" else "node"
        cluster.kubectl("delete", kind, obj["metadata"]["name"], "--ignore-not-found", "--wait=false", check=False)


def install_cluster_defaults() -> None:
    """The default node pool, the providers' storage classes and NVIDIA's DRA DeviceClass."""
    spec = {"vCPU": DEFAULT_POOL["cpu"], "memoryGiB": DEFAULT_POOL["memoryGiB"], "bootDiskGiB": 100}
    nodes = [_node(f"{DEFAULT_POOL['name']}-{i}", {}, spec, {}, [], {}) for i in range(DEFAULT_POOL["nodes"])]
    classes = [{"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
                "provisioner": driver, "volumeBindingMode": "Immediate", "reclaimPolicy": "Delete"}
               for name, driver in STORAGE_CLASSES.items()]
    classes.append({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                    "metadata": {"name": DEFAULT_STORAGE_CLASS[0],
                                 "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
                    "provisioner": DEFAULT_STORAGE_CLASS[1], "volumeBindingMode": "Immediate"})
    # nvidia-dra-driver-gpu's chart (templates/deviceclass-gpu.yaml): GPUs of its driver.
    device_class = {"apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass", "metadata": {"name": "gpu.nvidia.com"},
                    "spec": {"selectors": [{"cel": {"expression":
                             "device.driver == 'gpu.nvidia.com' && device.attributes['gpu.nvidia.com'].type == 'gpu'"}}]}}
    apply([*nodes, *classes, device_class])


def pool_for(entry, replicas: Optional[int] = None) -> tuple[str, list[dict]]:
    if not entry.accelerator:
        return "", []
    return pool(entry.provider, entry.accelerator, replicas or entry.group)

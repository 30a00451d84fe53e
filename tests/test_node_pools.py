"""The local control plane's fake node pools (catalog_tools/node_pools.py) follow the tables:
each node carries the labels and taints the README's node-pool command gives it and no
other, the machine type's capacity, and an allocatable below it by the provider's
reservation; every entry's pool can be built."""

from __future__ import annotations

import re

import pytest

from catalog_tools import e2e, node_pools
from catalog_tools.catalog import entries
from catalog_tools.render import render_text
from krm_functions import tables
from krm_functions.krmfn import yamlio

WELL_KNOWN = {"kubernetes.io/hostname", "kubernetes.io/os", "kubernetes.io/arch"}


def _nodes(objects):
    return [o for o in objects if o["kind"] == "Node"]


def test_a_gke_l4_node_is_what_gcloud_creates():
    name, objects = node_pools.pool("gke", {"accelerator": "nvidia-l4", "count": 1}, 2)
    nodes = _nodes(objects)
    assert name == "nvidia-l4-pool" and len(nodes) == 2
    node = nodes[0]
    assert set(node["metadata"]["labels"]) - WELL_KNOWN == {
        "cloud.google.com/gke-accelerator", "cloud.google.com/gke-nodepool", "node.kubernetes.io/instance-type"}
    assert node["metadata"]["labels"]["node.kubernetes.io/instance-type"] == "g2-standard-8"
    assert node["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    assert node["status"]["capacity"]["nvidia.com/gpu"] == "1"
    assert node["status"]["capacity"]["cpu"] == "8" and node["status"]["capacity"]["memory"] == "32768Mi"
    # plan-node-sizes: 0.06 + 0.01 + 2 x 0.005 + 4 x 0.0025 cores; memory 1 + 0.8 + 0.8 + 0.96 GiB + 100 MiB
    assert node["status"]["allocatable"]["cpu"] == "7910m"
    assert node["status"]["allocatable"]["memory"] == f"{int((32 - 3.56 - 100 / 1024) * 1024)}Mi"
    assert node["metadata"]["annotations"] == {"kwok.x-k8s.io/node": "fake"}


def test_a_tpu_slice_is_one_node_per_host_with_its_topology():
    _, objects = node_pools.pool("gke", {"accelerator": "tpu-v6e-slice", "topology": "4x4"}, 1)
    nodes = _nodes(objects)
    assert len(nodes) == 4
    labels = nodes[0]["metadata"]["labels"]
    assert labels["cloud.google.com/gke-tpu-topology"] == "4x4"
    assert labels["cloud.google.com/gke-tpu-accelerator"] == "tpu-v6e-slice"
    assert nodes[0]["status"]["capacity"]["google.com/tpu"] == "4"
    assert nodes[0]["spec"]["taints"][0]["key"] == "google.com/tpu"


def test_spot_only_machines_get_the_spot_label():
    _, objects = node_pools.pool("gke", {"accelerator": "nvidia-h100-80gb", "count": 1}, 1)
    assert _nodes(objects)[0]["metadata"]["labels"]["cloud.google.com/gke-spot"] == "true"


def test_eks_and_aks_nodes_carry_their_node_group_labels_and_the_commands_taint():
    _, eks = node_pools.pool("eks", {"accelerator": "nvidia-l4", "count": 1}, 1)
    assert _nodes(eks)[0]["metadata"]["labels"]["eks.amazonaws.com/nodegroup"] == "nvidia-l4-nodes"
    assert _nodes(eks)[0]["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
    _, aks = node_pools.pool("aks", {"accelerator": "amd-instinct-mi300x", "count": 8}, 1)
    node = _nodes(aks)[0]
    assert node["status"]["capacity"]["amd.com/gpu"] == "8"
    assert "kubernetes.azure.com/accelerator" not in node["metadata"]["labels"]  # an NVIDIA-only label


def test_dra_nodes_publish_resource_slices_instead_of_a_gpu_resource():
    _, objects = node_pools.pool("generic-dra", {"accelerator": "nvidia-l4", "count": 2}, 1)
    node = _nodes(objects)[0]
    assert not {k for k in node["status"]["capacity"] if "/" in k}
    (slice_,) = [o for o in objects if o["kind"] == "ResourceSlice"]
    assert slice_["spec"]["nodeName"] == node["metadata"]["name"]
    assert [d["attributes"]["productName"]["string"] for d in slice_["spec"]["devices"]] == ["NVIDIA L4"] * 2


def test_every_machine_type_an_accelerator_row_names_has_a_capacity_row():
    machines = tables.table("accelerators")["machineTypes"]
    for row in tables.accelerators():
        if row["provider"] not in ("gke", "eks", "aks"):
            continue
        named = list((row.get("machines") or {}).values()) + [
            t["machineType"] for t in (row.get("topologies") or {}).values()]
        missing = [m for m in named if m not in machines]
        assert not missing, f"{row['provider']}/{row['name']}: no machineTypes row for {missing}"


README_NODES = re.compile(r"--num-nodes[= ](\d+)|desiredCapacity: (\d+)|--node-count (\d+)")


@pytest.mark.parametrize("entry", [e for e in entries() if e.accelerator], ids=lambda e: str(e.path))
def test_every_entry_has_the_node_pool_its_readme_creates(entry, docker_image):
    # As many nodes as the README's node-pool command makes: a model-load Job that needs the
    # accelerator (Triton's engine build) runs on the server's nodes before it.
    docs = yamlio.load_all(render_text(entry.path))
    name, objects = node_pools.pool(entry.provider, entry.accelerator, e2e.accelerator_pods(entry, docs))
    match = README_NODES.search((entry.path / "README.md").read_text())
    # KServe's controller makes an LLMInferenceService's pods: the e2e tier only admits it.
    if match and not {d["kind"] for d in docs} & e2e.ADMITTED_ONLY:
        assert len(_nodes(objects)) == int(next(g for g in match.groups() if g)), name
    assert name and _nodes(objects)


def test_namespaces_are_valid_names():
    for entry in entries():
        namespace, named = e2e.namespace_for(entry, [])
        assert len(namespace) <= 63 and namespace.replace("-", "").isalnum() and not named


def test_aks_reserves_the_cpu_its_documentation_lists_for_each_core_count():
    # learn.microsoft.com/azure/aks/node-resource-reservations: millicores for 1..64 cores.
    documented = {1: 60, 2: 100, 4: 140, 8: 180, 16: 260, 32: 420, 64: 740}
    aks = tables.provider("aks")
    for cores, millicores in documented.items():
        cpu, _ = node_pools.reserved(aks, cores, 1024)
        assert round(cpu * 1000) == millicores, cores


def test_aks_memory_reservation_is_capped_at_a_quarter_of_the_vm():
    aks = tables.provider("aks")
    _, small = node_pools.reserved(aks, 2, 4)
    assert small == pytest.approx(4 * 0.25 + 100 / 1024)
    _, large = node_pools.reserved(aks, 96, 1900)
    assert large == pytest.approx((50 + 20 * node_pools.MAX_PODS) * 1e6 / 2**30 + 100 / 1024)


def test_an_aks_nodes_disk_grows_with_its_vcpus_as_the_os_disk_default_does():
    aks = tables.provider("aks")
    assert [node_pools.boot_disk_gib(aks, {"vCPU": n}) for n in (4, 8, 24, 96)] == [128, 256, 512, 1024]


def test_dra_slices_publish_only_the_drivers_attributes():
    _, objects = node_pools.pool("generic-dra", {"accelerator": "nvidia-l4", "count": 2}, 1)
    slices = [o for o in objects if o["kind"] == "ResourceSlice"]
    for device in slices[0]["spec"]["devices"]:
        assert set(device["attributes"]) == {"type", "productName"}

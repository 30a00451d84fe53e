"""The e2e tier in make test: every entry deployed on the local control plane (make cluster)
as a user deploys it (catalog_tools/e2e.py), and the failures a user will meet there:
a missing or too small node pool, a pod below the namespace's Pod Security level, a
model-load Job that fails. Outside CI it skips when the control plane is not running."""

from __future__ import annotations

import io
import json
import os
import time

import pytest

from catalog_tools import cluster, deploy, e2e, node_pools
from catalog_tools.catalog import Entry, entries

from .conftest import ROOT, need

ENTRIES = entries()
L4_ENTRY = "serving-catalog/core/deployment/vllm/gemma-2b/gke"
FOUR_L4_ENTRY = "serving-catalog/core/deployment/vllm/gemma-3-27b-it/gke"
TGI_ENTRY = "serving-catalog/core/deployment/tgi/mistral-7b-instruct/gke"


def _entry(path: str) -> Entry:
    return next(e for e in ENTRIES if str(e.path) == path)


@pytest.fixture(scope="session")
def control_plane(docker_image, crd_dir):
    if not cluster.running():
        need("the local control plane is not running (`make cluster`; make test starts it)")
    with cluster.environment():
        yield


@pytest.fixture(scope="session")
def deployed(control_plane) -> dict:
    """Every entry, deployed, checked and taken down once for the session."""
    return e2e.run_all(ENTRIES)


@pytest.mark.parametrize("path", [str(e.path) for e in ENTRIES])
def test_the_entry_deploys_and_rolls_out(deployed, path):
    assert deployed[path] is None, deployed[path]


@pytest.fixture
def namespace(control_plane, request):
    """A namespace of the test's own, enforcing Pod Security "restricted", with the token Secret."""
    name = "e2e-" + request.node.name.replace("_", "-")[5:40].rstrip("-")
    e2e._ns(name, "restricted")
    cluster.kubectl("create", "secret", "generic", "hf-token", "-n", name,
                    f"--from-literal=HF_TOKEN={e2e.SECRET_PLACEHOLDER}", check=False)
    created: list[dict] = []
    yield name, created
    cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)
    node_pools.delete(created)


def _deploy_fails(entry: str, namespace: str, **kwargs) -> tuple[str, float]:
    start = time.monotonic()
    with pytest.raises(deploy.DeployError) as failed:
        deploy.deploy(entry, namespace, timeout=120, poll=1, rollout_timeout=240, out=io.StringIO(), **kwargs)
    return str(failed.value), time.monotonic() - start


def test_without_its_node_pool_an_entry_stops_within_a_minute_with_the_schedulers_reason(namespace):
    name, created = namespace
    # The cluster has only some other pool: TPU nodes, tainted as GKE taints them.
    _, wrong = node_pools.pool("gke", {"accelerator": "tpu-v6e-slice", "topology": "2x2"}, 1, name="tpu-only-pool")
    created += wrong
    node_pools.apply(json.loads(json.dumps(wrong)))
    message, elapsed = _deploy_fails(L4_ENTRY, name)
    assert elapsed < deploy.UNSCHEDULABLE_GRACE + 30, f"took {elapsed:.0f}s"
    assert "cannot be scheduled" in message and "1 node(s) had untolerated taint" in message, message
    assert "didn't match Pod's node affinity/selector" in message, message
    assert f"{L4_ENTRY}/README.md, Prerequisites" in message and "still applied: " in message, message


def test_a_pool_with_too_few_gpus_is_named_by_the_scheduler(namespace):
    name, created = namespace
    # The entry asks for 4 L4s a pod; the pool's machines have 1.
    _, small = node_pools.pool("gke", {"accelerator": "nvidia-l4", "count": 1}, 1, name="small-l4-pool")
    created += small
    node_pools.apply(json.loads(json.dumps(small)))
    message, _ = _deploy_fails(FOUR_L4_ENTRY, name, unschedulable_grace=5)
    assert "Insufficient nvidia.com/gpu" in message, message


def test_a_restricted_namespace_refuses_a_root_pod_with_the_admission_message(namespace):
    name, _ = namespace
    # TGI is the documented exception (servers table): its pods run as root, so "restricted"
    # refuses them, and deploy says so at once instead of waiting for the rollout.
    message, elapsed = _deploy_fails(TGI_ENTRY, name)
    assert 'violates PodSecurity "restricted:v1.34"' in message and "runAsNonRoot" in message, message
    assert elapsed < deploy.UNSCHEDULABLE_GRACE, f"took {elapsed:.0f}s"


def test_a_failing_model_load_job_says_why_and_the_server_is_not_applied(namespace, tmp_path):
    name, _ = namespace
    # KWOK's chaos stage fails the Job's pod as a refused download does (its template puts
    # the message into YAML unquoted: no ": " in it).
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(f"""apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [{os.path.relpath(ROOT / L4_ENTRY, overlay)}]
patches:
- target: {{kind: Job}}
  patch: |-
    apiVersion: batch/v1
    kind: Job
    metadata: {{name: any}}
    spec:
      template:
        metadata:
          labels: {{pod-container-running-failed.stage.kwok.x-k8s.io: "true"}}
          annotations:
            pod-container-running-failed.stage.kwok.x-k8s.io/message: >-
              huggingface_hub.errors.GatedRepoError 403 Client Error. Cannot access gated repo
""")
    message, _ = _deploy_fails(str(overlay), name)
    assert "the download was refused: accept the model's licence" in message, message
    assert "still applied: the model-load Job and its volume." in message, message
    assert cluster.kubectl("get", "deployments", "-n", name, "-o", "name").strip() == ""

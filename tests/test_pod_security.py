"""Every pod the catalog renders is hardened (krm_functions/pod_security.py), as checked by
a policy engine (checkov, pinned, catalog_tools/policy.py) and by the servers' own source."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from catalog_tools import policy
from catalog_tools.catalog import entries
from catalog_tools.conformance import envs
from catalog_tools.render import ROOT, render
from krm_functions import pod_security, tables
from krm_functions.krmfn import KubeObject

ENTRIES = [str(e.path) for e in entries()]


@pytest.fixture(scope="module")
def rendered(docker_image):
    return {entry: render(ROOT / entry) for entry in ENTRIES}


@pytest.fixture(scope="module")
def report(rendered):
    return policy.run(rendered)


def _root_only_skips(docs: list[dict]) -> set[str]:
    """The skips a root-only upstream image needs (the servers table cites why): TGI's."""
    for d in docs:
        for t in KubeObject(d).pod_templates():
            if tables.SERVER_LABEL in t.labels and pod_security.runs_as_root(tables.server(t.labels[tables.SERVER_LABEL])):
                return set(pod_security.ROOT_SKIPS)
    return set()


def test_no_entry_fails_a_policy_check(report):
    assert {entry: sorted(failed) for entry, failed in report.failed.items() if failed} == {}


def test_every_entry_skips_at_most_five_checks_each_with_a_reason(report, rendered):
    """Beyond five, only a root-only image's two (_root_only_skips)."""
    over = {entry: sorted(skipped) for entry, skipped in report.skipped.items()
            if len(skipped - _root_only_skips(rendered[entry])) > policy.MAX_SKIPPED}
    assert over == {}
    for docs in rendered.values():
        for d in docs:
            for key, value in (d.get("metadata", {}).get("annotations") or {}).items():
                if key.startswith("checkov.io/skip"):
                    check, _, reason = value.partition("=")
                    assert check and len(reason) > 20, f"{d['kind']}/{d['metadata']['name']}: {key} has no reason"


def test_restricted_pod_security_checks_are_never_skipped_but_for_a_root_only_image(report, rendered):
    for entry, skipped in report.skipped.items():
        assert skipped & set(policy.RESTRICTED) <= _root_only_skips(rendered[entry]), entry


def test_checkov_sees_every_pod_the_catalog_renders(rendered):
    """Pods inside custom resources reach checkov as Pods; an InferenceService's pod has its runtime's containers."""
    for entry, docs in rendered.items():
        pods = policy.policy_documents(docs)
        templates = sum(len(KubeObject(d).pod_templates()) for d in docs
                        if d["kind"] not in ("ServingRuntime", "ClusterServingRuntime", "InferenceService"))
        isvc = [d for d in docs if d["kind"] == "InferenceService"]
        others = [d for d in docs if d["kind"] not in ("ServingRuntime", "ClusterServingRuntime", "InferenceService")
                  and not KubeObject(d).pod_templates()]
        assert len(pods) == templates + len(isvc) + len(others), entry
        for pod in pods:
            if pod["kind"] == "Pod":
                assert pod["spec"].get("containers"), (entry, pod["metadata"]["name"])


def test_a_privileged_root_container_fails_the_policy(rendered):
    docs = [dict(d) for d in rendered["serving-catalog/core/deployment/vllm/gemma-2b/gke"]]
    bad = KubeObject(next(d for d in docs if d["kind"] == "Deployment"))
    [tmpl] = bad.pod_templates()
    tmpl.spec["securityContext"] = {"runAsUser": 0}
    tmpl.containers()[0]["securityContext"] = {"privileged": True, "allowPrivilegeEscalation": True}
    failed = {line.split()[0] for line in policy.run({"bad": docs}).failed["bad"]}
    assert {"CKV_K8S_16", "CKV_K8S_20", "CKV_K8S_23", "CKV_K8S_31", "CKV_K8S_37"} <= failed


def test_the_network_policy_component_covers_every_pod(tmp_path, docker_image):
    """With components/network-policy, checkov's NetworkPolicy check passes unskipped."""
    entry = ROOT / "serving-catalog/core/lws/vllm/deepseek-r1/gke"
    (tmp_path / "kustomization.yaml").write_text(
        f"resources: [{os.path.relpath(entry, tmp_path)}]\ncomponents: [{os.path.relpath(ROOT / 'components/network-policy', tmp_path)}]\n")
    docs = render(tmp_path)
    assert any(d["kind"] == "NetworkPolicy" for d in docs)
    for d in docs:  # drop the entry's skip of the NetworkPolicy check
        annotations = d.get("metadata", {}).get("annotations") or {}
        for key in [k for k, v in annotations.items() if v.startswith("CKV2_K8S_6=")]:
            del annotations[key]
    result = policy.run({"with-policy": docs})
    assert not [f for f in result.failed["with-policy"] if f.startswith("CKV2_K8S_6")]


@pytest.mark.parametrize("server", ["vllm", "vllm-tpu"])
def test_vllm_writes_only_under_home_and_tmp(server):
    """Every path default in the pinned release's vllm/envs.py lies under HOME or the temp
    dir: the two the pod makes writable, so its root filesystem can be read-only."""
    if not pod_security.read_only_root(tables.server(server)):
        pytest.skip(f"{server}: root filesystem writable")
    env = envs.server_envs()[server]
    code = ("import json, vllm.envs as e\nout = {}\nfor k, f in e.environment_variables.items():\n"
            "    try:\n        v = f()\n    except Exception:\n        continue\n"
            "    if isinstance(v, str) and v.startswith('/'):\n        out[k] = v\nprint(json.dumps(out))")
    proc = subprocess.run([str(env.python), "-c", code], capture_output=True, text=True, cwd="/",
                          env={"HOME": "/scratch-home", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-800:]
    paths = json.loads(proc.stdout.strip().splitlines()[-1])
    assert paths, "no path defaults found: vllm/envs.py changed shape"
    assert {k: v for k, v in paths.items() if not v.startswith(("/scratch-home/", "/tmp"))} == {}

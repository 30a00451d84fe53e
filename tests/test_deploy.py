"""make deploy (catalog_tools/deploy.py) against a stand-in kubectl that plays a cluster:
it applies the model-load Job first, fails at once with the pod's reason, applies the
server only after the Job completes, keeps to the namespace, and takes an entry down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

ENTRY = "serving-catalog/core/deployment/vllm/gemma-2b/gke"
FAKE_KUBECTL = '''#!{python}
import json, os, sys
state = json.load(open(os.environ["FAKE_CLUSTER"]))
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if "--namespace" in args:
    i = args.index("--namespace"); args = args[:i] + args[i + 2:]
if args[0] in ("apply", "delete"):
    if args[0] == "delete":
        open(os.environ["FAKE_LOG"] + ".deleted", "w").write(open(args[args.index("-f") + 1]).read())
    print(args[0] + "d"); sys.exit(0)
if args[:2] == ["get", "pods"]:
    print(json.dumps({{"items": state["pods"]}})); sys.exit(0)
if args[:2] == ["get", "events"]:
    # Events appear after the first look (deploy notes what was there before it began).
    seen = state.setdefault("event_looks", 0); state["event_looks"] = seen + 1
    json.dump(state, open(os.environ["FAKE_CLUSTER"], "w"))
    print(json.dumps({{"items": state.get("events", []) if seen else []}})); sys.exit(0)
if args[0] == "get":
    polls = state.setdefault("polls", 0); state["polls"] = polls + 1
    json.dump(state, open(os.environ["FAKE_CLUSTER"], "w"))
    print(json.dumps({{"status": state["job"][min(polls, len(state["job"]) - 1)]}})); sys.exit(0)
if args[0] == "logs":
    print(state.get("log", "")); sys.exit(0)
sys.exit("fake kubectl: unexpected " + " ".join(args))
'''


def _waiting(reason: str, message: str) -> dict:
    return {"metadata": {"name": "p"}, "status": {"phase": "Pending", "containerStatuses": [
        {"state": {"waiting": {"reason": reason, "message": message}}}]}}


RUNNING = {"metadata": {"name": "p"}, "status": {"phase": "Running", "containerStatuses": [{"state": {"running": {}}}]}}
FAILED = {"metadata": {"name": "p"}, "status": {"phase": "Running", "containerStatuses": [
    {"state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": {"terminated": {"exitCode": 1}}}]}}


@pytest.fixture
def cluster(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(FAKE_KUBECTL.format(python=sys.executable))
    (bin_dir / "kubectl").chmod(0o755)

    def run(state: dict, *args: str, entry: str = ENTRY) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
        (tmp_path / "cluster.json").write_text(json.dumps(state))
        log = tmp_path / "calls.log"
        log.write_text("")
        env = {**os.environ, "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
               "FAKE_CLUSTER": str(tmp_path / "cluster.json"), "FAKE_LOG": str(log)}
        proc = subprocess.run([sys.executable, "-m", "catalog_tools.deploy", entry, "--poll", "0", *args],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        return proc, [json.loads(line) for line in log.read_text().splitlines()]
    return run


def _applied_server(calls: list[list[str]]) -> bool:
    return any("apply" in c and "--selector" not in c for c in calls)


def test_a_missing_secret_fails_at_once_with_the_pods_reason(docker_image, cluster):
    proc, calls = cluster({"job": [{}], "pods": [_waiting("CreateContainerConfigError", 'secret "hf-token" not found')]})
    assert proc.returncode == 1
    assert 'CreateContainerConfigError: a Secret or ConfigMap the pod reads is missing: secret "hf-token" not found' in proc.stderr
    assert not _applied_server(calls), "the server must wait for its weights"


def test_a_licence_not_accepted_says_so(docker_image, cluster):
    proc, _ = cluster({"job": [{}], "pods": [FAILED], "log": "huggingface_hub.errors.GatedRepoError: 403 Client Error"})
    assert proc.returncode == 1 and "accept the model's licence" in proc.stderr


def test_the_server_follows_the_job_in_the_namespace_given(docker_image, cluster):
    proc, calls = cluster({"job": [{}, {"succeeded": 1}], "pods": [RUNNING]}, "--namespace", "inference")
    assert proc.returncode == 0, proc.stderr
    assert "job/vllm-gemma-2b-download: 0s, p Running" in proc.stdout
    assert all(c[:2] == ["--namespace", "inference"] for c in calls)
    applies = [c for c in calls if "apply" in c]
    assert "--selector" in applies[0] and "--selector" not in applies[-1]


def test_a_job_that_never_finishes_times_out(docker_image, cluster):
    proc, calls = cluster({"job": [{}], "pods": [RUNNING]}, "--timeout", "0s")
    assert proc.returncode == 1 and "did not finish in 0s" in proc.stderr


def test_undeploy_keeps_the_weights_when_asked(docker_image, cluster, tmp_path):
    proc, calls = cluster({"job": [{}], "pods": []}, "--delete", "--keep-weights")
    assert proc.returncode == 0, proc.stderr
    deleted = (tmp_path / "calls.log.deleted").read_text()
    assert "kind: Deployment" in deleted and "kind: PersistentVolumeClaim" not in deleted


def test_a_job_in_the_namespace_the_entry_names_is_watched_there(docker_image, cluster):
    # llm-d entries name their namespace: the Job is not in the current one.
    proc, calls = cluster({"job": [{"succeeded": 1}], "pods": []},
                          entry="serving-catalog/llm-d/modelservice/vllm/llama3-8b/gke")
    assert proc.returncode == 0, proc.stderr
    gets = [c for c in calls if c[-4:-2] == ["get", "job/llama3-8b-download"]]
    assert gets and all(c[:2] == ["--namespace", "llm-d"] for c in gets), calls


PSA_REFUSAL = ('Error creating: pods "vllm-gemma-2b-download-x" is forbidden: violates PodSecurity "restricted:v1.34": '
               'runAsNonRoot != true (pod or container "download" must set securityContext.runAsNonRoot=true)')


def test_a_pod_refused_by_pod_security_fails_at_once_with_the_admission_message(docker_image, cluster):
    event = {"metadata": {"uid": "e1"}, "count": 1, "reason": "FailedCreate", "message": PSA_REFUSAL,
             "involvedObject": {"kind": "Job", "name": "vllm-gemma-2b-download"}}
    proc, calls = cluster({"job": [{}], "pods": [], "events": [event]})
    assert proc.returncode == 1
    assert 'violates PodSecurity "restricted:v1.34": runAsNonRoot != true' in proc.stderr
    # Nothing is left half-applied without saying so.
    assert "still applied: " in proc.stderr and "make undeploy ENTRY=" + ENTRY in proc.stderr
    assert not _applied_server(calls)


def test_a_job_pod_that_exits_names_its_termination_message_when_the_log_is_gone(docker_image, cluster):
    pod = {"metadata": {"name": "p"}, "status": {"phase": "Failed", "containerStatuses": [{"state": {"terminated": {
        "exitCode": 1, "reason": "Error", "message": "huggingface_hub.errors.RepositoryNotFoundError: 404"}}}]}}
    proc, _ = cluster({"job": [{}], "pods": [pod]})
    assert proc.returncode == 1 and "exited 1: huggingface_hub.errors.RepositoryNotFoundError: 404" in proc.stderr

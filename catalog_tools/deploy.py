"""Deploy a catalog entry: the model-load Jobs first, watched until they finish (or fail,
with the pod's reason, at once), then the server. Or take an entry down again.

    python -m catalog_tools.deploy ENTRY [-n NAMESPACE] [--timeout 4h] [--poll 10]
    python -m catalog_tools.deploy ENTRY [-n NAMESPACE] --delete [--keep-weights]

`make deploy ENTRY=... [NAMESPACE=...]` and scripts/deploy call this. It needs kubectl and
the current context; it renders the entry with the same engine as the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from krm_functions.krmfn import yamlio

from .budgets import deploy_wait_seconds
from .render import RenderError, render_text

PREREQUISITE = "prerequisite=model-load"
# Container states that will not get better by waiting, and what to do about them.
STUCK = {
    "CreateContainerConfigError": "a Secret or ConfigMap the pod reads is missing",
    "ErrImagePull": "the image cannot be pulled",
    "ImagePullBackOff": "the image cannot be pulled",
    "InvalidImageName": "the image name is invalid",
    "CreateContainerError": "the container cannot be created",
}
# What a failed download says in its log when the model's licence is not accepted.
GATED = re.compile(r"GatedRepoError|Access to model .* is restricted|403 Client Error|401 Client Error")


# How long a pod may stay unschedulable before deploy stops, unless a cluster autoscaler
# has said it is adding a node for it (its TriggeredScaleUp event).
UNSCHEDULABLE_GRACE = 60
WORKLOADS = ("Deployment", "StatefulSet", "LeaderWorkerSet")


class DeployError(Exception):
    pass


class Unschedulable:
    """Pods the scheduler cannot place, and since when; a reason once the grace is over."""

    def __init__(self, entry: str, namespace: Optional[str], grace: float = UNSCHEDULABLE_GRACE):
        self.entry, self.namespace, self.grace, self.since = entry, namespace, grace, {}

    def check(self, pod: dict) -> Optional[str]:
        name = pod["metadata"]["name"]
        condition = next((c for c in (pod.get("status") or {}).get("conditions") or []
                          if c.get("type") == "PodScheduled" and c.get("status") == "False"
                          and c.get("reason") == "Unschedulable"), None)
        if condition is None:
            self.since.pop(name, None)
            return None
        first = self.since.setdefault(name, time.monotonic())
        if time.monotonic() - first < self.grace or self._scaling_up(name):
            return None
        return (f"pod {name} cannot be scheduled: {condition.get('message', '')} "
                f"(create the node pool in {Path(self.entry) / 'README.md'}, Prerequisites)")

    def _scaling_up(self, pod: str) -> bool:
        events = kubectl("get", "events", "--field-selector", f"involvedObject.name={pod}", "-o", "json",
                         namespace=self.namespace, check=False)
        try:
            return any(e.get("reason") == "TriggeredScaleUp" for e in json.loads(events or "{}").get("items", []))
        except json.JSONDecodeError:
            return False


def kubectl(*args: str, namespace: Optional[str] = None, check: bool = True) -> str:
    command = ["kubectl", *(["--namespace", namespace] if namespace else []), *args]
    proc = subprocess.run(command, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise DeployError(f"{' '.join(command[:6])}...: {proc.stderr.strip()[-400:]}")
    return proc.stdout


def _duration(text: str) -> int:
    match = re.fullmatch(r"(\d+)(s|m|h)?", text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r}: a duration such as 90s, 30m or 4h")
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]


def pod_problem(pod: dict, namespace: Optional[str]) -> Optional[str]:
    """Why a Job's pod cannot succeed, or None while it may."""
    name = pod["metadata"]["name"]
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STUCK:
            return f"pod {name}: {waiting['reason']}: {STUCK[waiting['reason']]}: {waiting.get('message', '')[:300]}"
        terminated = (status.get("lastState") or {}).get("terminated") or (status.get("state") or {}).get("terminated")
        if terminated and terminated.get("exitCode", 0) != 0:
            log = kubectl("logs", name, "--tail=40", namespace=namespace, check=False)
            # The container's termination message (the kubelet's, or the end of its log with
            # terminationMessagePolicy FallbackToLogsOnError) where the log is gone.
            said = terminated.get("message") or ""
            gated = GATED.search(log) or GATED.search(said)
            if gated:
                return (f"pod {name}: the download was refused: accept the model's licence on its Hugging Face page "
                        f"with the account whose token is in the Secret (log: {gated.group(0)})")
            last = [line for line in (log.strip() or said).splitlines() if line.strip()][-1:] or ["(no log)"]
            reason = f" ({terminated['reason']})" if terminated.get("reason") not in (None, "Error") else ""
            return f"pod {name}: exited {terminated['exitCode']}{reason}: {last[0][:300]}"
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("reason") == "Unschedulable" and condition.get("status") == "False":
            # Not fatal: a cluster autoscaler may add the node. Reported as progress.
            return None
    return None


class CreationRefused:
    """A controller's pods that the API server refuses to create (Pod Security admission, a
    quota): a FailedCreate event saying "forbidden" on the workload or an object it owns,
    newer than the deploy. Waiting does not help: it is an error at once."""

    def __init__(self, namespace: Optional[str]):
        self.namespace = namespace
        self.before = {uid: count for uid, count, _, _ in self._events()}

    def _events(self) -> list[tuple[str, int, str, str]]:
        text = kubectl("get", "events", "--field-selector", "reason=FailedCreate", "-o", "json",
                       namespace=self.namespace, check=False)
        try:
            items = json.loads(text or "{}").get("items", [])
        except json.JSONDecodeError:
            return []
        return [(e["metadata"].get("uid", ""), int(e.get("count") or 1), (e.get("involvedObject") or {}).get("name", ""),
                 e.get("message", "")) for e in items]

    def check(self, workloads: list[str]) -> Optional[tuple[str, str]]:
        """(workload, what was refused) for the first workload whose pods were refused."""
        for uid, count, owner, message in self._events():
            if self.before.get(uid, 0) >= count or "forbidden" not in message:
                continue
            for workload in workloads:
                if owner == workload or owner.startswith(workload + "-"):
                    return workload, f"{owner}: {message[:600]}"
        return None


def watch_job(job: str, namespace: Optional[str], timeout: int, poll: float, out=None,
              unschedulable: Optional[Unschedulable] = None) -> None:
    out = out or sys.stdout
    start = time.monotonic()
    refused = CreationRefused(namespace)
    while True:
        state = json.loads(kubectl("get", f"job/{job}", "-o", "json", namespace=namespace))
        status = state.get("status") or {}
        if status.get("succeeded"):
            print(f"deploy: job/{job} complete after {int(time.monotonic() - start)}s", file=out, flush=True)
            return
        for condition in status.get("conditions") or []:
            if condition.get("type") == "Failed" and condition.get("status") == "True":
                raise DeployError(f"job/{job} failed: {condition.get('reason')}: {condition.get('message', '')}")
        pods = json.loads(kubectl("get", "pods", "-l", f"job-name={job}", "-o", "json", namespace=namespace))["items"]
        if not pods and (refusal := refused.check([job])):
            raise DeployError(f"job/{job}: the pod was refused: {refusal[1]}")
        for pod in pods:
            problem = pod_problem(pod, namespace) or (unschedulable and unschedulable.check(pod))
            if problem:
                raise DeployError(f"job/{job}: {problem}")
        elapsed = int(time.monotonic() - start)
        phases = ", ".join(f"{p['metadata']['name']} {p.get('status', {}).get('phase', '?')}" for p in pods) or "no pod yet"
        print(f"deploy: job/{job}: {elapsed}s, {phases}", file=out, flush=True)
        if elapsed >= timeout:
            raise DeployError(f"job/{job} did not finish in {timeout}s (--timeout; MODEL_LOAD_TIMEOUT)")
        time.sleep(poll)


def deploy(entry: str, namespace: Optional[str], timeout: int, poll: float, rollout_timeout: int = 0,
           out=None, unschedulable_grace: float = UNSCHEDULABLE_GRACE) -> None:
    out = out or sys.stdout
    with tempfile.TemporaryDirectory(prefix="deploy-") as tmp:
        rendered = Path(tmp) / "rendered.yaml"
        rendered.write_text(render_text(entry))
        docs = yamlio.load_all(rendered.read_text())
        # A Job in the namespace the entry names (llm-d's) is watched there.
        jobs = [(d["metadata"]["name"], d["metadata"].get("namespace") or namespace) for d in docs
                if d.get("kind") == "Job" and (d["metadata"].get("labels") or {}).get("prerequisite") == "model-load"]
        applied = ""
        try:
            if jobs:
                print(f"deploy: {entry}: model-load first ({', '.join(name for name, _ in jobs)})", file=out, flush=True)
                kubectl("apply", "--selector", PREREQUISITE, "-f", str(rendered), namespace=namespace)
                applied = "the model-load Job and its volume"
                for job, job_namespace in jobs:
                    watch_job(job, job_namespace, timeout, poll, out=out,
                              unschedulable=Unschedulable(entry, job_namespace, unschedulable_grace))
            print(f"deploy: {entry}: the server and the rest", file=out, flush=True)
            out.write(kubectl("apply", "-f", str(rendered), namespace=namespace))
            applied = "the whole entry"
            if rollout_timeout:
                watch_rollout(entry, docs, namespace, rollout_timeout, poll, out=out, grace=unschedulable_grace)
        except DeployError as err:
            if not applied:
                raise
            # Say what stays in the cluster and how to take it away.
            where = f" NAMESPACE={namespace}" if namespace else ""
            raise DeployError(f"{err}\n  still applied: {applied}. Fix the cause and run `make deploy ENTRY={entry}{where}` "
                              f"again, or remove it with `make undeploy ENTRY={entry}{where}`") from None


def _ready(workload: dict) -> tuple[int, int]:
    """(ready, wanted) replicas of a Deployment, StatefulSet or LeaderWorkerSet (its groups)."""
    spec, status = workload.get("spec") or {}, workload.get("status") or {}
    return int(status.get("readyReplicas") or 0), int(spec.get("replicas", 1))


def watch_rollout(entry: str, docs: list[dict], namespace: Optional[str], timeout: int, poll: float,
                  out=None, grace: float = UNSCHEDULABLE_GRACE) -> None:
    """Wait until every workload of the entry has its replicas ready; stop at once with the
    reason when a pod cannot start or cannot be scheduled."""
    workloads = [(d["kind"], d["metadata"]["name"], d["metadata"].get("namespace") or namespace)
                 for d in docs if d.get("kind") in WORKLOADS]
    out = out or sys.stdout
    start, waiting = time.monotonic(), {}
    refused = {ns: CreationRefused(ns) for ns in {ns for _, _, ns in workloads}}
    while workloads:
        pending, waiting_in = [], {}
        for kind, name, ns in workloads:
            ready, wanted = _ready(json.loads(kubectl("get", f"{kind.lower()}/{name}", "-o", "json", namespace=ns)))
            if ready < wanted:
                pending.append(f"{kind.lower()}/{name} {ready}/{wanted}")
                waiting_in.setdefault(ns, []).append(f"{kind.lower()}/{name}")
        # Per namespace: pods the API server refuses to create, then pods that cannot start.
        for ns, names in waiting_in.items():
            refusal = refused[ns].check([n.split("/", 1)[1] for n in names])
            if refusal:
                raise DeployError(f"{refusal[0]}: its pods are refused: {refusal[1]}")
            checker = waiting.setdefault(ns, Unschedulable(entry, ns, grace))
            for pod in json.loads(kubectl("get", "pods", "-o", "json", namespace=ns))["items"]:
                problem = pod_problem(pod, ns) or checker.check(pod)
                if problem:
                    raise DeployError(f"{', '.join(names)}: {problem}")
        elapsed = int(time.monotonic() - start)
        if not pending:
            print(f"deploy: {entry}: ready after {elapsed}s", file=out, flush=True)
            return
        print(f"deploy: {elapsed}s, waiting for {', '.join(pending)}", file=out, flush=True)
        if elapsed >= timeout:
            raise DeployError(f"not ready in {timeout}s: {', '.join(pending)} (--rollout-timeout)")
        time.sleep(poll)


def delete(entry: str, namespace: Optional[str], keep_weights: bool, out=None) -> None:
    docs = yamlio.load_all(render_text(entry))
    if keep_weights:
        docs = [d for d in docs if d.get("kind") != "PersistentVolumeClaim"]
    with tempfile.TemporaryDirectory(prefix="deploy-") as tmp:
        rendered = Path(tmp) / "rendered.yaml"
        rendered.write_text(yamlio.dump_all(docs))
        (out or sys.stdout).write(kubectl("delete", "--ignore-not-found", "-f", str(rendered), namespace=namespace))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="deploy", description=__doc__.split("\n\n")[0])
    parser.add_argument("entry")
    parser.add_argument("-n", "--namespace")
    parser.add_argument("--timeout", type=_duration,
                        default=_duration(os.environ["MODEL_LOAD_TIMEOUT"]) if os.environ.get("MODEL_LOAD_TIMEOUT")
                        else deploy_wait_seconds(),
                        help="how long a model-load Job may take (default: MODEL_LOAD_TIMEOUT or 4h)")
    parser.add_argument("--poll", type=float, default=10.0, help="seconds between checks")
    parser.add_argument("--rollout-timeout", type=_duration, default=0,
                        help="also wait this long for the server's replicas to be ready (0: do not wait)")
    parser.add_argument("--delete", action="store_true", help="take the entry down instead")
    parser.add_argument("--keep-weights", action="store_true", help="with --delete: keep the weights volume")
    args = parser.parse_args(argv)
    try:
        if args.delete:
            delete(args.entry, args.namespace, args.keep_weights)
        else:
            deploy(args.entry, args.namespace, args.timeout, args.poll, args.rollout_timeout)
    except RenderError as err:
        print(f"deploy: {err.path}: the entry does not render:\n{err.stderr.strip()}", file=sys.stderr)
        return 1
    except DeployError as err:
        print(f"deploy: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The e2e tier: every entry deployed on the local control plane (make cluster) as a user
would, with catalog_tools/deploy.py, and checked there.

    python -m catalog_tools.e2e [ENTRY ...] [--keep]      (make e2e [ENTRY=...] [KEEP=1])

Per entry: a namespace enforcing Pod Security "restricted" ("baseline" where the servers
table documents that the server cannot run as non-root: TGI), the Secrets its README asks
for, and the node pool its README creates (catalog_tools/node_pools.py). Then deploy: the
model-load Job completes (KWOK), then the server rolls out. Checked: every pod Running or
Succeeded; each pod that asks for an accelerator on a node of the entry's pool (pods that ask
for none may run on any node their taints allow) that has the resource; each LeaderWorkerSet group's pods on one
TPU slice; every Service selecting pods has ready endpoints; every object is in the API
server. Then undeploy leaves nothing of the entry but the weights claim (KEEP_WEIGHTS).
KServe's controller does not run here: InferenceServices and LLMInferenceServices are only
admitted (their CRDs' schemas and CEL rules), and the tier says so.

Entries run side by side in lanes (--jobs): entries whose pods could land on the same fake
nodes (the same provider and accelerator) or that share the namespace they name run one
after another in one lane; each entry gets a node pool of its own.
Last line: `<n> of <m> entries deployed`.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional

from krm_functions import tables
from krm_functions.krmfn import yamlio

from . import cluster, deploy, node_pools
from .catalog import Entry, entries
from .render import RenderError, render_text

# Kinds whose controller does not run on the local control plane: admitted only.
ADMITTED_ONLY = {"InferenceService", "LLMInferenceService"}
SECRET_PLACEHOLDER = "e2e-not-a-token"
ROLLOUT_TIMEOUT = 180
# Lanes at once: the control plane and kubectl share the machine's cores.
JOBS = 4


class EntryFailed(Exception):
    pass


def namespace_for(entry: Entry, docs: list[dict]) -> tuple[str, bool]:
    """The entry's own namespace where it names one, else one of the tier's."""
    named = {d["metadata"]["namespace"] for d in docs if d["metadata"].get("namespace")}
    if named:
        return sorted(named)[0], True
    slug = re.sub(r"[^a-z0-9-]", "-", "-".join(entry.path.parts[1:]).lower())
    return ("e2e-" + slug)[:63].rstrip("-"), False


def pod_specs(docs: list[dict]) -> list[tuple[dict, dict, int]]:
    """(workload, pod spec, pods) of every workload the entry renders."""
    out = []
    for d in docs:
        spec = d.get("spec") or {}
        if d["kind"] in ("Deployment", "StatefulSet", "Job"):
            pods = int(spec.get("replicas", 1)) if d["kind"] != "Job" else 1
            out.append((d, spec["template"]["spec"], pods))
        elif d["kind"] == "LeaderWorkerSet":
            template = spec["leaderWorkerTemplate"]
            size, replicas = int(template.get("size", 1)), int(spec.get("replicas", 1))
            worker = template["workerTemplate"]["spec"]
            leader = (template.get("leaderTemplate") or template["workerTemplate"])["spec"]
            out.append((d, leader, replicas))
            out.append((d, worker, replicas * (size - 1)))
    return out


def pod_security_level(docs: list[dict]) -> str:
    # The servers table's documented exception (TGI) renders runAsNonRoot: false.
    text = yamlio.dump_all(docs)
    return "baseline" if "runAsNonRoot: false" in text else "restricted"


def secrets(docs: list[dict]) -> set[str]:
    names = set()

    def walk(node):
        if isinstance(node, dict):
            if "secretKeyRef" in node:
                names.add(node["secretKeyRef"]["name"])
            if "secret" in node and isinstance(node["secret"], dict) and "secretName" in node["secret"]:
                names.add(node["secret"]["secretName"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk([d for d in docs if d["kind"] != "Secret"])
    return names - {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}


def _wants_accelerator(spec: dict) -> bool:
    return any(((c.get("resources") or {}).get("limits") or {}).keys() & {"nvidia.com/gpu", "amd.com/gpu",
                                                                          "google.com/tpu"}
               or (c.get("resources") or {}).get("claims") for c in spec.get("containers", []))


def accelerator_pods(entry: Entry, docs: list[dict]) -> int:
    """How many pods (GPU: a node each) or slices (TPU) of its accelerator the entry runs at
    once. A model-load Job (Triton's engine build) finishes before the server starts: its
    nodes are the server's."""
    tpu = tables.accelerator(entry.provider, entry.accelerator["accelerator"])["type"] == "tpu"
    counts, slices = {"Job": 0, "server": 0}, {"Job": set(), "server": set()}
    for workload, spec, pods in pod_specs(docs):
        if not _wants_accelerator(spec):
            continue
        phase = "Job" if workload["kind"] == "Job" else "server"
        if tpu:  # a slice per replica: a single-host pod, or a LeaderWorkerSet group
            slices[phase].add((workload["kind"], workload["metadata"]["name"],
                               int(workload["spec"].get("replicas", 1))))
        else:
            counts[phase] += pods
    if tpu:
        counts = {phase: sum(r for _, _, r in found) for phase, found in slices.items()}
    return max(*counts.values(), 1)


def _ns(namespace: str, level: str) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": {
            "pod-security.kubernetes.io/enforce": level, "pod-security.kubernetes.io/enforce-version": "v1.34"}}}))


def pod_on_node_problem(pod: dict, nodes: dict, pool: Optional[str] = None) -> Optional[str]:
    """Why a pod is not Running or Succeeded on a node (of `pool`, where it asks for an
    accelerator) that has what it asks for; None when it is."""
    phase, node = pod["status"].get("phase"), pod["spec"].get("nodeName")
    if phase not in ("Running", "Succeeded"):
        return str(phase)
    wants = {k for c in pod["spec"]["containers"] for k in ((c.get("resources") or {}).get("limits") or {})
             if "/" in k}
    claims = any((c.get("resources") or {}).get("claims") for c in pod["spec"]["containers"])
    # A pod that asks for no accelerator may run on any node its taints allow.
    expected = pool if (wants or claims) and pool else None
    if not node or (expected and not node.startswith(expected + "-")):
        return f"on node {node}, not in pool {expected}"
    if node not in nodes:
        # A finished Job's pod may outlive its node.
        return None if phase == "Succeeded" else f"{phase} on node {node}, which is gone"
    if wants - set(nodes[node]["status"]["allocatable"]):
        return f"node {node} has no {sorted(wants)}"
    return None


def check_deployed(entry: Entry, docs: list[dict], namespace: str, pool: str) -> list[str]:
    problems = []
    nodes = {n["metadata"]["name"]: n for n in json.loads(cluster.kubectl("get", "nodes", "-o", "json"))["items"]}
    # The entry's own pods: a namespace the entry names (llm-d's) holds other entries' too.
    owners = tuple(f"{w['metadata']['name']}-" for w, _, _ in pod_specs(docs))
    pods = [pod for pod in json.loads(cluster.kubectl("get", "pods", "-n", namespace, "-o", "json"))["items"]
            if pod["metadata"]["name"].startswith(owners)]
    for pod in pods:
        problem = pod_on_node_problem(pod, nodes, pool)
        if problem:
            problems.append(f"pod {pod['metadata']['name']}: {problem}")
    for d in docs:
        if d["kind"] == "LeaderWorkerSet":
            lws = json.loads(cluster.kubectl("get", "leaderworkerset", d["metadata"]["name"], "-n", namespace,
                                             "-o", "json"))
            groups = {}
            for pod in pods:
                labels = pod["metadata"]["labels"]
                if labels.get("leaderworkerset.sigs.k8s.io/name") == d["metadata"]["name"]:
                    groups.setdefault(labels.get("leaderworkerset.sigs.k8s.io/group-index"), []).append(pod)
            size = int(d["spec"]["leaderWorkerTemplate"].get("size", 1))
            for index, members in groups.items():
                if len(members) != size:
                    problems.append(f"leaderworkerset {d['metadata']['name']} group {index}: {len(members)} of {size} pods")
                topology = (d["metadata"].get("annotations") or {}).get("leaderworkerset.sigs.k8s.io/exclusive-topology")
                if topology:
                    slices = {nodes[p["spec"]["nodeName"]]["metadata"]["labels"].get(topology) for p in members}
                    if len(slices) != 1:
                        problems.append(f"leaderworkerset group {index}: spread over {sorted(map(str, slices))}")
            if int((lws.get("status") or {}).get("readyReplicas") or 0) < int(d["spec"].get("replicas", 1)):
                problems.append(f"leaderworkerset {d['metadata']['name']}: not ready")
        if d["kind"] == "Service" and d["spec"].get("selector"):
            slices = json.loads(cluster.kubectl("get", "endpointslices", "-n", namespace, "-l",
                                                f"kubernetes.io/service-name={d['metadata']['name']}", "-o", "json"))
            ready = [e for s in slices["items"] for e in s.get("endpoints") or []
                     if (e.get("conditions") or {}).get("ready")]
            if not ready:
                problems.append(f"service {d['metadata']['name']}: no ready endpoints")
    return problems


def _objects_left(docs: list[dict], namespace: str, keep_weights: bool) -> list[str]:
    left = []
    for d in docs:
        if keep_weights and d["kind"] == "PersistentVolumeClaim":
            continue
        kind = d["kind"].lower() + ("." + d["apiVersion"].split("/")[0] if "/" in d["apiVersion"] else "")
        ns = d["metadata"].get("namespace") or namespace
        out = cluster.kubectl("get", kind, d["metadata"]["name"], "-n", ns, "--ignore-not-found", "-o", "name",
                              check=False)
        if out.strip():
            left.append(out.strip())
    return left


def run_entry(entry: Entry, keep: bool, out=sys.stdout, pool_name: Optional[str] = None) -> Optional[str]:
    """None when the entry deployed and passed; else what failed. `pool_name`: a node pool
    of the entry's own (default: the README's name for it)."""
    docs = yamlio.load_all(render_text(entry.path))
    namespace, named = namespace_for(entry, docs)
    level = pod_security_level(docs)
    _ns(namespace, level)
    for secret in sorted(secrets(docs)):
        cluster.kubectl("create", "secret", "generic", secret, "-n", namespace,
                        f"--from-literal=HF_TOKEN={SECRET_PLACEHOLDER}", check=False)
    pool, pool_objects = ("", [])
    if entry.accelerator and not {d["kind"] for d in docs} & ADMITTED_ONLY:
        pool, pool_objects = node_pools.pool(entry.provider, entry.accelerator, accelerator_pods(entry, docs),
                                             name=pool_name)
        node_pools.apply([json.loads(json.dumps(o)) for o in pool_objects])
    log = io.StringIO()
    try:
        deploy.deploy(str(entry.path), None if named else namespace, timeout=300, poll=1,
                      rollout_timeout=ROLLOUT_TIMEOUT, out=log)
        problems = check_deployed(entry, docs, namespace, pool)
        admitted = sorted({d["kind"] for d in docs} & ADMITTED_ONLY)
        if problems:
            return "; ".join(problems)
        if not keep:
            deploy.delete(str(entry.path), None if named else namespace, keep_weights=True, out=log)
            left = _objects_left(docs, namespace, keep_weights=True)
            if left:
                return f"undeploy left {', '.join(left)}"
        note = f" ({', '.join(admitted)} admitted only: KServe's controller does not run here)" if admitted else ""
        print(f"ok: {len(docs)} objects, pod security {level}{note}", file=out)
        return None
    except deploy.DeployError as err:
        return f"{err}\n{log.getvalue()[-1500:]}"
    finally:
        if not keep:
            # An entry's own namespace (llm-d) is the next entry's too: wait until it is gone.
            cluster.kubectl("delete", "namespace", namespace, f"--wait={str(named).lower()}", "--timeout=120s",
                            "--ignore-not-found", check=False)
            node_pools.delete(pool_objects)


def untainted(entry: Entry) -> bool:
    """Whether the entry's pool has no taint (generic clusters): any pod may land there."""
    return bool(entry.accelerator) and not any(
        (tables.provider(entry.provider).get("nodePoolTaints") or {}).values())


def lanes(chosen: list[Entry]) -> list[list[Entry]]:
    """Entries that must not run at once, together: the same (provider, accelerator), whose
    pods any of their pools' nodes would take, or the same named namespace."""
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    with ThreadPoolExecutor(max_workers=JOBS) as pool:  # renders are cached for the run
        rendered = list(pool.map(lambda e: yamlio.load_all(render_text(e.path)), chosen))
    keys = []
    for entry, docs in zip(chosen, rendered):
        own = [f"entry:{entry.path}"]
        if entry.accelerator:
            own.append(f"nodes:{entry.provider}/{entry.accelerator['accelerator']}")
            if untainted(entry):
                own.append("nodes:untainted")
        own += [f"namespace:{n}" for n in {d["metadata"].get("namespace") for d in docs} if n]
        for key in own[1:]:
            parent[find(key)] = find(own[0])
        keys.append(own[0])
    grouped: dict[str, list[Entry]] = {}
    for entry, key in zip(chosen, keys):
        grouped.setdefault(find(key), []).append(entry)
    # The longest lanes first, so that they do not finish last.
    return sorted(grouped.values(), key=len, reverse=True)


def run_all(chosen: list[Entry], keep: bool = False, jobs: int = JOBS,
            report: Callable[[Entry, Optional[str], str], None] = lambda *_: None) -> dict[str, Optional[str]]:
    """Every entry, lanes side by side: {entry path: None if deployed, else what failed}."""
    index = {str(e.path): i for i, e in enumerate(chosen)}
    results: dict[str, Optional[str]] = {}
    lock = threading.Lock()

    def run_lane(lane: list[Entry]) -> None:
        for entry in lane:
            out = io.StringIO()
            # With more than one entry, a pool of the entry's own: KEEP=1 leaves them all.
            pool_name = f"{entry.accelerator['accelerator']}-pool-e{index[str(entry.path)]}" \
                if entry.accelerator and len(chosen) > 1 else None
            try:
                failure = run_entry(entry, keep, out=out, pool_name=pool_name)
            except (RenderError, cluster.ClusterError, deploy.DeployError) as err:
                failure = str(err)
            except Exception as err:  # one entry's surprise must not stop the others
                failure = f"{type(err).__name__}: {err}"
            with lock:
                results[str(entry.path)] = failure
                report(entry, failure, out.getvalue())

    # Untainted pools take other entries' pods (a Job, an endpoint picker) and then go with
    # their entry: their lane runs after the others.
    grouped = lanes(chosen)
    first = [lane for lane in grouped if not any(untainted(e) for e in lane)]
    last = [lane for lane in grouped if any(untainted(e) for e in lane)]
    for batch in (first, last):
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for future in [pool.submit(run_lane, lane) for lane in batch]:
                future.result()
    return results


def check_kept() -> list[str]:
    """With --keep: every pod of the cluster Running or Succeeded, on a node that has what it
    asks for (an extended resource, or the devices of its allocated claims)."""
    nodes = {n["metadata"]["name"]: n for n in json.loads(cluster.kubectl("get", "nodes", "-o", "json"))["items"]}
    problems, count = [], 0
    for pod in json.loads(cluster.kubectl("get", "pods", "-A", "-o", "json"))["items"]:
        count += 1
        problem = pod_on_node_problem(pod, nodes)
        if problem:
            problems.append(f"{pod['metadata']['namespace']}/{pod['metadata']['name']}: {problem}")
    print(f"kept: {count} pods, {count - len(problems)} Running or Succeeded on a node with what they ask for")
    return problems


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="e2e", description=__doc__.split("\n\n")[0])
    parser.add_argument("entries", nargs="*", help="entry paths (default: every entry)")
    parser.add_argument("--keep", action="store_true", help="leave every entry running, one namespace each")
    parser.add_argument("--jobs", type=int, default=JOBS, help=f"lanes at once (default {JOBS})")
    args = parser.parse_args(argv)
    if not cluster.running():
        print("e2e: the local control plane is not running: `make cluster`", file=sys.stderr)
        return 1
    chosen = entries()
    if args.entries:
        wanted = {str(Path(e)).rstrip("/") for e in args.entries}
        chosen = [e for e in chosen if str(e.path) in wanted]
        unknown = wanted - {str(e.path) for e in chosen}
        if unknown:
            print(f"e2e: not a catalog entry: {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
    done = iter(range(1, len(chosen) + 1))

    def report(entry: Entry, failure: Optional[str], out: str) -> None:
        print(f"[{next(done)}/{len(chosen)}] {entry.path}: {out.strip() if not failure else 'FAILED: ' + failure}",
              flush=True)

    with cluster.environment():
        results = run_all(chosen, args.keep, args.jobs, report)
        kept_problems = check_kept() if args.keep else []
    for problem in kept_problems:
        print(f"kept: {problem}")
    deployed = sum(1 for failure in results.values() if failure is None)
    print(f"{deployed} of {len(chosen)} entries deployed")
    return 0 if deployed == len(chosen) and not kept_problems else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Policy engines on every rendered pod: checkov (bridgecrewio/checkov, pinned, in its own
venv under build/policy because its pins clash with the project's) on every entry.

checkov reads Deployments and Jobs as rendered. Pods that live inside custom resources
(LeaderWorkerSet templates, KServe runtimes merged with their InferenceService) are
handed to it as Pod objects carrying their owner's annotations, so every pod the catalog
renders is checked, and the owner's in-manifest skips (checkov.io/skipN) apply.

    python -m catalog_tools.policy --setup      # the checkov venv (cached)
    python -m catalog_tools.policy [ENTRY...]   # report per entry; exit 1 on a failed check
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import venv
from dataclasses import dataclass, field
from pathlib import Path

from krm_functions.krmfn import KubeObject, yamlio

from .render import ROOT, render

CHECKOV = "checkov==3.3.30"
VENV = ROOT / "build" / "policy" / CHECKOV.replace("==", "-")
# At most this many checks skipped (with a reason) per entry; none may fail.
MAX_SKIPPED = 5
# The Pod Security Standards "restricted" profile's controls, as checkov checks them
# (https://kubernetes.io/docs/concepts/security/pod-security-standards/): host namespaces,
# privileged, capabilities (drop ALL, add none), host ports and sockets, privilege
# escalation, running as non-root, seccomp. Never skippable by an entry, but for the
# servers-table rows that name why (pod_security.ROOT_SKIPS).
RESTRICTED = ("CKV_K8S_16", "CKV_K8S_17", "CKV_K8S_18", "CKV_K8S_19", "CKV_K8S_20", "CKV_K8S_23",
              "CKV_K8S_25", "CKV_K8S_26", "CKV_K8S_27", "CKV_K8S_28", "CKV_K8S_31", "CKV_K8S_37",
              "CKV_K8S_39")
NATIVE = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}
POD_FIELDS = ("containers", "initContainers", "volumes")


@dataclass
class Report:
    failed: dict[str, set[str]] = field(default_factory=dict)   # entry -> "CHECK resource"
    skipped: dict[str, set[str]] = field(default_factory=dict)  # entry -> check ids


def setup() -> Path:
    checkov = VENV / "bin" / "checkov"
    if not checkov.exists():
        venv.create(VENV, with_pip=True)
        proc = subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", CHECKOV], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"policy: pip install {CHECKOV} failed: {proc.stderr.strip()[-600:]}")
    return checkov


def _pod(owner: KubeObject, suffix: str, spec: dict, annotations: dict, labels: dict) -> dict:
    meta = {"name": f"{owner.kind.lower()}-{owner.name}-{suffix}", "namespace": owner.namespace,
            "labels": labels, "annotations": annotations}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


# Entries take the namespace they are applied to (kubectl -n, an overlay's `namespace:`);
# the policy run applies them to one, as a user would, not to `default`.
NAMESPACE = "inference"
CLUSTER_SCOPED = {"Namespace", "PriorityClass", "StorageClass", "CustomResourceDefinition", "DeviceClass"}


def _in_namespace(doc: dict) -> dict:
    kind = doc.get("kind", "")
    if kind.startswith("Cluster") or kind in CLUSTER_SCOPED or (doc.get("metadata") or {}).get("namespace"):
        return doc
    return {**doc, "metadata": {**doc["metadata"], "namespace": NAMESPACE}}


def policy_documents(docs: list[dict]) -> list[dict]:
    """What checkov reads for one entry: every object as rendered, but a pod inside a custom
    resource, which becomes a Pod."""
    objs = [KubeObject(d) for d in docs]
    runtimes = {o.name: o for o in objs if o.kind in ("ServingRuntime", "ClusterServingRuntime")}
    out = []
    for obj in objs:
        annotations = obj.get("metadata", "annotations", default=None) or {}
        if obj.kind in ("ServingRuntime", "ClusterServingRuntime"):
            # Half a pod: KServe takes the pod-level fields from the InferenceService, whose
            # pod (below) is checked with the runtime's containers. The cluster variant is
            # generated from the same file (catalog_tools/generate.py).
            continue
        if obj.kind in NATIVE or not obj.pod_templates():
            out.append(obj.data)  # as rendered: workloads checkov knows, NetworkPolicies, RBAC, Services
        elif obj.kind == "InferenceService":
            predictor = dict(obj.get("spec", "predictor", default=None) or {})
            model = predictor.pop("model", None) or {}
            runtime = runtimes.get(model.get("runtime"))
            spec = {k: v for k, v in predictor.items() if k not in ("labels", "annotations", "minReplicas", "maxReplicas")}
            if runtime is not None:  # what KServe deploys: the runtime's containers, the predictor's pod fields
                annotations = {**(runtime.get("metadata", "annotations", default=None) or {}), **annotations}
                spec.update({k: runtime.get("spec", k) for k in POD_FIELDS if runtime.get("spec", k)})
            out.append(_pod(obj, "predictor", spec, annotations, predictor.get("labels") or {}))
        else:
            for tmpl in obj.pod_templates():
                out.append(_pod(obj, tmpl.role or "pod", tmpl.spec,
                                {**annotations, **(tmpl.meta.get("annotations") or {})}, tmpl.labels))
    return out


def run(entries: dict[str, list[dict]]) -> Report:
    """One checkov run over every entry's documents (checkov starts in seconds, scans in ms)."""
    checkov = setup()
    report = Report()
    with tempfile.TemporaryDirectory(prefix="policy-") as tmp:
        files = {}
        for n, (entry, docs) in enumerate(sorted(entries.items())):
            path = Path(tmp) / f"{n:03d}.yaml"
            path.write_text(yamlio.dump_all(_in_namespace(d) for d in policy_documents(docs)))
            files[f"/{path.name}"] = entry
            report.failed[entry], report.skipped[entry] = set(), set()
        proc = subprocess.run([str(checkov), "-d", tmp, "--framework", "kubernetes", "-o", "json",
                               "--skip-download", "--compact"], capture_output=True, text=True)
        if proc.returncode not in (0, 1) or not proc.stdout.strip().startswith(("{", "[")):
            raise SystemExit(f"policy: checkov failed ({proc.returncode}): {proc.stderr.strip()[-600:]}")
    results = json.loads(proc.stdout)
    for block in results if isinstance(results, list) else [results]:
        for check in block.get("results", {}).get("failed_checks", []):
            report.failed[files[check["file_path"]]].add(f"{check['check_id']} {check['resource']}")
        for check in block.get("results", {}).get("skipped_checks", []):
            report.skipped[files[check["file_path"]]].add(check["check_id"])
    return report


def main(argv: list[str]) -> int:
    if argv[:1] == ["--setup"]:
        setup()
        return 0
    from .catalog import entries
    paths = argv or [str(e.path) for e in entries()]
    report = run({p: render(ROOT / p) for p in paths})
    bad = 0
    for entry in sorted(report.failed):
        failed, skipped = report.failed[entry], report.skipped[entry]
        ok = not failed
        bad += not ok
        print(f"{entry}: {len(failed)} failed, {len(skipped)} skipped ({', '.join(sorted(skipped))})")
        for line in sorted(failed):
            print(f"    failed {line}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

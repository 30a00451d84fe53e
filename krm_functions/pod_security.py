"""The catalog's pod hardening: one definition, written into every base and applied
to every pod a function generates (model-load Jobs), and checked on every rendered
pod (catalog_tools/check_entries.py; tests/test_pod_security.py runs the policy engines).

Every pod meets the Pod Security Standards "restricted" profile: a fixed non-root UID,
no privilege escalation, all capabilities dropped, seccomp RuntimeDefault, and no
service-account token (no catalog workload but the endpoint picker calls the API).
The servers table says per server whether the root filesystem can be read-only and
whether the image can run as non-root at all (`security`).
"""

from __future__ import annotations

from typing import Any

from .workloads import upsert_named

# A fixed UID and GID above the range images and hosts allocate (checkov CKV_K8S_40).
UID = GID = 10001
# Writable scratch: the images' caches go under HOME (vLLM's ~/.cache/vllm and
# ~/.config/vllm, Triton's ~/.triton, FlashInfer's JIT cache) and /tmp (torch inductor);
# the kubelet sets HOME=/ for a UID the image's /etc/passwd does not know.
SCRATCH_VOLUME = "tmp"
SCRATCH_PATH = "/tmp"
HOME_ENV = {"name": "HOME", "value": SCRATCH_PATH}
# On every pod the catalog renders: components/network-policy selects them by it.
POD_LABELS = {"app.kubernetes.io/part-of": "serving-catalog"}

# checkov checks the catalog skips on purpose, with the reason, on every workload.
CHECKOV_SKIPS = {
    "CKV_K8S_43": "images are pinned by release tag, the tag the servers table names and the tests check",
    "CKV_K8S_11": "no CPU limit: CFS throttling stalls token streaming; CPU is requested",
    "CKV2_K8S_6": "the NetworkPolicy is the opt-in Component components/network-policy: ingress sources differ per cluster",
}
WRITABLE_ROOT_SKIP = {
    "CKV_K8S_22": "the root filesystem stays writable: no evidence yet that this server writes only under HOME and /tmp",
}
ROOT_SKIPS = {
    "CKV_K8S_23": "the image's Python lives under /root, unreadable to any other UID "
                  "(huggingface/text-generation-inference#3082); runs as root without capabilities",
    "CKV_K8S_40": "runs as root: see CKV_K8S_23",
}


def runs_as_root(server: dict) -> bool:
    return bool((server.get("security") or {}).get("runAsRoot"))


def read_only_root(server: dict) -> bool:
    return bool((server.get("security") or {}).get("readOnlyRootFilesystem"))


def pod_context(server: dict) -> dict:
    if runs_as_root(server):
        return {"runAsNonRoot": False, "runAsUser": 0, "runAsGroup": 0, "fsGroup": 0,
                "seccompProfile": {"type": "RuntimeDefault"}}
    return {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": GID, "fsGroup": GID,
            "seccompProfile": {"type": "RuntimeDefault"}}


def container_context(read_only: bool) -> dict:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": read_only}


def checkov_annotations(server: dict) -> dict[str, str]:
    skips = {**CHECKOV_SKIPS, **(ROOT_SKIPS if runs_as_root(server) else {}),
             **({} if read_only_root(server) else WRITABLE_ROOT_SKIP)}
    return {f"checkov.io/skip{n}": f"{check}={reason}" for n, (check, reason) in enumerate(skips.items(), 1)}


def restrict(pod: dict, server: dict) -> dict:
    """Harden a pod spec the catalog generates, in place: the server's security row."""
    pod["automountServiceAccountToken"] = False
    pod["securityContext"] = pod_context(server)
    upsert_named(pod.setdefault("volumes", []), {"name": SCRATCH_VOLUME, "emptyDir": {}})
    for c in (pod.get("initContainers") or []) + (pod.get("containers") or []):
        # Always: the kubelet checks the pod may pull the image (its credentials), not
        # only that some other pod pulled it onto the node; layers stay cached.
        c["imagePullPolicy"] = "Always"
        c["securityContext"] = container_context(read_only_root(server))
        upsert_named(c.setdefault("env", []), dict(HOME_ENV))
        upsert_named(c.setdefault("volumeMounts", []), {"name": SCRATCH_VOLUME, "mountPath": SCRATCH_PATH})
    return pod


def problems(pod: dict, containers: list[dict], server: dict, calls_api: bool = False) -> list[str]:
    """How a rendered pod departs from the hardening its server row asks for (besides
    what the policy engines check): the fixed UID, the read-only root, the scratch
    volume, no token. `containers` are the pod's (a KServe runtime's carry the pod fields)."""
    out = []
    want = pod_context(server)
    if not calls_api and pod.get("automountServiceAccountToken") is not False:
        out.append("automountServiceAccountToken is not false (the pod does not call the API)")
    for c in containers:
        ctx: dict[str, Any] = {**(pod.get("securityContext") or {}), **(c.get("securityContext") or {})}
        name = c.get("name", "kserve-container")
        for key in ("runAsNonRoot", "runAsUser", "runAsGroup"):
            if ctx.get(key) != want[key]:
                out.append(f"container {name}: securityContext.{key} is {ctx.get(key)!r}, the servers table asks {want[key]!r}")
        if ctx.get("readOnlyRootFilesystem") is not read_only_root(server):
            out.append(f"container {name}: securityContext.readOnlyRootFilesystem is {ctx.get('readOnlyRootFilesystem')!r}, "
                       f"the servers table asks {read_only_root(server)}")
        if not any(m.get("mountPath") == SCRATCH_PATH for m in c.get("volumeMounts") or []):
            out.append(f"container {name}: no writable {SCRATCH_PATH} (emptyDir)")
        if not any(e.get("name") == "HOME" for e in c.get("env") or []):
            out.append(f"container {name}: HOME is not set (the kubelet would set / for a UID the image does not know)")
    return out

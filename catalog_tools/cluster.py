"""A local Kubernetes control plane for the e2e tier and for trying an entry without GPUs.

    python -m catalog_tools.cluster up      (make cluster)
    python -m catalog_tools.cluster down    (make cluster-down)
    python -m catalog_tools.cluster status

Every part is the upstream project's own binary, built from its Go module at the version
its go.mod under cluster/go/ pins (cached in build/cluster-bin/, keyed by module version and
go.sum): etcd, kube-apiserver (Pod Security admission and the default admission plugins),
kube-controller-manager, kube-scheduler (DRA on: it is GA in 1.34), KWOK standing in for the
kubelets of fake nodes, and the LeaderWorkerSet controller with its webhooks. Every CRD in
$SERVING_CATALOG_CRDS is installed. Everything listens on 127.0.0.1 only; fake nodes report
127.0.0.1 as their address, so the API server never connects anywhere else.

State (pids, logs, PKI, etcd data, kubeconfig) lives in build/cluster/. `up` on a running
cluster returns at once; a part that fails to start is named with its log file.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Optional

from krm_functions.krmfn import yamlio

ROOT = Path(__file__).resolve().parent.parent
MODULES = ROOT / "cluster" / "go"
STATE = ROOT / "build" / "cluster"
BIN_CACHE = ROOT / "build" / "cluster-bin"
KUBECONFIG = STATE / "kubeconfig"

# Loopback ports, away from the defaults a developer's own cluster may use.
PORTS = {"etcd": 12379, "etcd-peer": 12380, "apiserver": 16443, "controller-manager": 20257,
         "scheduler": 20259, "kwok": 20250, "lws-webhook": 19443, "lws-health": 18081}
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.1/16"  # pod IPs are API data only: nothing here connects to them

# component -> Go module directory, the module whose version keys the cache, binary -> package.
COMPONENTS = {
    "etcd": ("etcd", "go.etcd.io/etcd/server/v3", {"etcd": "go.etcd.io/etcd/server/v3"}),
    "kubernetes": ("kubernetes", "k8s.io/kubernetes", {
        "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
        "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
        "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler"}),
    "kwok": ("kwok", "sigs.k8s.io/kwok", {"kwok": "sigs.k8s.io/kwok/cmd/kwok"}),
    "lws": ("lws", "sigs.k8s.io/lws", {"lws-controller": "sigs.k8s.io/lws/cmd"}),
}
# The order they start in, and what each needs first.
PROCESSES = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "lws-controller",
             "storage-provisioner"]


class ClusterError(Exception):
    pass


def say(message: str) -> None:
    print(f"cluster: {message}", flush=True)


# --- building -------------------------------------------------------------------------

def module_version(component: str) -> str:
    directory, module, _ = COMPONENTS[component]
    text = (MODULES / directory / "go.mod").read_text()
    match = re.search(rf"^(?:require)?\s*{re.escape(module)} (v\S+)", text, re.M)
    if not match:
        raise ClusterError(f"cluster/go/{directory}/go.mod does not require {module}")
    return match.group(1)


def cache_dir(component: str) -> Path:
    directory, _, _ = COMPONENTS[component]
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        digest.update((MODULES / directory / name).read_bytes())
    return BIN_CACHE / f"{component}-{module_version(component)}-{digest.hexdigest()[:10]}"


def binary(name: str) -> Path:
    for component, (_, _, binaries) in COMPONENTS.items():
        if name in binaries:
            return cache_dir(component) / name
    raise KeyError(name)


def _go() -> str:
    go = shutil.which("go") or next((p for p in ("/usr/local/go/bin/go",) if Path(p).exists()), None)
    if not go:
        raise ClusterError("the control plane is built from Go modules: install Go 1.26 (`go` is not on PATH)")
    return go


def build(component: str) -> None:
    target = cache_dir(component)
    directory, module, binaries = COMPONENTS[component]
    if all((target / name).exists() for name in binaries):
        return
    version = module_version(component)
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly -buildvcs=false"}
    for name, package in binaries.items():
        log = STATE / "logs" / f"build-{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        say(f"building {name} from {module} {version} (a first build takes minutes on 2 cores; "
            f"cached in {target.relative_to(ROOT)})")
        start = time.monotonic()
        with log.open("w") as out:
            proc = subprocess.Popen([_go(), "build", "-v", "-trimpath", "-o", str(tmp / name), package],
                                    cwd=MODULES / directory, env=env, stdout=out, stderr=subprocess.STDOUT)
            while proc.poll() is None:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    packages = sum(1 for _ in log.open())
                    say(f"  {name}: {int(time.monotonic() - start)}s, {packages} packages compiled so far")
        if proc.returncode != 0:
            raise ClusterError(f"building {name} failed: see {log.relative_to(ROOT)}")
        say(f"  {name}: built in {int(time.monotonic() - start)}s")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


# --- PKI ------------------------------------------------------------------------------

def _openssl(*args: str) -> None:
    proc = subprocess.run(["openssl", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ClusterError(f"openssl {args[0]}: {proc.stderr.strip()[-300:]}")


def pki() -> Path:
    """A CA, the API server's serving certificate, an admin client certificate, the service
    account keys and the LWS webhook's serving certificate (all for 127.0.0.1)."""
    d = STATE / "pki"
    if (d / "done").exists():
        return d
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj", "/CN=serving-catalog-local-ca",
             "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"))

    def sign(name: str, subject: str, sans: Optional[str]) -> None:
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
                 "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"))
        ext = d / f"{name}.ext"
        ext.write_text(f"subjectAltName={sans}\n" if sans else "extendedKeyUsage=clientAuth\n")
        _openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.crt"), "-CAkey", str(d / "ca.key"),
                 "-CAcreateserial", "-days", "3650", "-extfile", str(ext), "-out", str(d / f"{name}.crt"))

    sign("apiserver", "/CN=kube-apiserver",
         "IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc")
    sign("admin", "/O=system:masters/CN=serving-catalog-admin", None)
    (d / "lws").mkdir(exist_ok=True)
    sign("lws/tls", "/CN=lws-webhook", "IP:127.0.0.1,DNS:localhost")
    _openssl("genrsa", "-out", str(d / "sa.key"), "2048")
    _openssl("rsa", "-in", str(d / "sa.key"), "-pubout", "-out", str(d / "sa.pub"))
    (d / "done").touch()
    return d


def write_kubeconfig(d: Path) -> None:
    KUBECONFIG.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: serving-catalog-local
  cluster:
    server: https://127.0.0.1:{PORTS['apiserver']}
    certificate-authority: {d / 'ca.crt'}
users:
- name: admin
  user:
    client-certificate: {d / 'admin.crt'}
    client-key: {d / 'admin.key'}
contexts:
- name: serving-catalog-local
  context: {{cluster: serving-catalog-local, user: admin}}
current-context: serving-catalog-local
""")


# --- processes ------------------------------------------------------------------------

def _pidfile(name: str) -> Path:
    return STATE / "pids" / f"{name}.pid"


def _log(name: str) -> Path:
    return STATE / "logs" / f"{name}.log"


def _alive(name: str) -> bool:
    try:
        pid = int(_pidfile(name).read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def _command(name: str, d: Path) -> list[str]:
    kubeconfig = str(KUBECONFIG)
    local = "127.0.0.1"
    if name == "etcd":
        return [str(binary("etcd")), "--data-dir", str(STATE / "etcd"), "--name", "local",
                "--listen-client-urls", f"http://{local}:{PORTS['etcd']}",
                "--advertise-client-urls", f"http://{local}:{PORTS['etcd']}",
                "--listen-peer-urls", f"http://{local}:{PORTS['etcd-peer']}",
                "--initial-advertise-peer-urls", f"http://{local}:{PORTS['etcd-peer']}",
                "--initial-cluster", f"local=http://{local}:{PORTS['etcd-peer']}",
                "--unsafe-no-fsync", "--quota-backend-bytes", str(2 << 30)]
    if name == "kube-apiserver":
        return [str(binary(name)), f"--etcd-servers=http://{local}:{PORTS['etcd']}",
                f"--bind-address={local}", f"--secure-port={PORTS['apiserver']}", f"--advertise-address={local}",
                "--endpoint-reconciler-type=none",
                f"--tls-cert-file={d / 'apiserver.crt'}", f"--tls-private-key-file={d / 'apiserver.key'}",
                f"--client-ca-file={d / 'ca.crt'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={d / 'sa.pub'}", f"--service-account-signing-key-file={d / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}", "--authorization-mode=Node,RBAC",
                # The default plugins (PodSecurity, ServiceAccount, DefaultStorageClass, the
                # webhooks, ResourceQuota, ...) plus NodeRestriction, as kubeadm and managed
                # clusters enable; privileged pods are left to Pod Security to refuse.
                "--enable-admission-plugins=NodeRestriction", "--allow-privileged=true",
                "--feature-gates=ImageVolume=true", "--profiling=false"]
    if name == "kube-controller-manager":
        return [str(binary(name)), f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}", f"--bind-address={local}",
                f"--secure-port={PORTS['controller-manager']}", "--leader-elect=false",
                "--use-service-account-credentials=true", f"--service-account-private-key-file={d / 'sa.key'}",
                f"--root-ca-file={d / 'ca.crt'}", f"--cluster-signing-cert-file={d / 'ca.crt'}",
                f"--cluster-signing-key-file={d / 'ca.key'}", "--controllers=*", "--concurrent-deployment-syncs=10",
                "--feature-gates=ImageVolume=true"]
    if name == "kube-scheduler":
        return [str(binary(name)), f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}", f"--bind-address={local}",
                f"--secure-port={PORTS['scheduler']}", "--leader-elect=false"]
    if name == "kwok":
        return [str(binary(name)), f"--kubeconfig={kubeconfig}", f"--config={STATE / 'kwok-stages.yaml'}",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake", f"--cidr={POD_CIDR}",
                f"--node-ip={local}", f"--node-port={PORTS['kwok']}",
                f"--server-address={local}:{PORTS['kwok']}"]
    if name == "lws-controller":
        return [str(binary(name)), f"--kubeconfig={kubeconfig}", f"--config={STATE / 'lws-config.yaml'}"]
    if name == "storage-provisioner":
        return [sys.executable, "-m", "catalog_tools.storage_provisioner"]
    raise KeyError(name)


def _start(name: str, d: Path) -> None:
    if _alive(name):
        return
    _pidfile(name).parent.mkdir(parents=True, exist_ok=True)
    with _log(name).open("a") as log:
        proc = subprocess.Popen(_command(name, d), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=ROOT)
    _pidfile(name).write_text(str(proc.pid))


def _wait(name: str, check, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(name):
            raise ClusterError(f"{name} exited: see {_log(name).relative_to(ROOT)}")
        if check():
            return
        time.sleep(0.5)
    raise ClusterError(f"{name} did not become ready in {int(timeout)}s: see {_log(name).relative_to(ROOT)}")


def _https_ok(port: int, path: str, d: Path, client: bool = True) -> bool:
    context = ssl.create_default_context(cafile=str(d / "ca.crt")) if client else ssl._create_unverified_context()
    if client:
        context.load_cert_chain(str(d / "admin.crt"), str(d / "admin.key"))
    try:
        with urllib.request.urlopen(f"https://127.0.0.1:{port}{path}", context=context, timeout=3) as response:
            return response.status == 200
    except OSError:
        return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status == 200
    except OSError:
        return False


def kubectl(*args: str, stdin: Optional[str] = None, check: bool = True) -> str:
    proc = subprocess.run([_kubectl(), f"--kubeconfig={KUBECONFIG}", *args], input=stdin, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise ClusterError(f"kubectl {' '.join(args[:3])}: {proc.stderr.strip()[-500:]}")
    return proc.stdout


def _kubectl() -> str:
    venv = Path(sys.executable).parent / "kubectl"
    return str(venv) if venv.exists() else (shutil.which("kubectl") or "kubectl")


def _module_dir(component: str) -> Path:
    directory, module, _ = COMPONENTS[component]
    out = subprocess.run([_go(), "list", "-m", "-f", "{{.Dir}}", module], cwd=MODULES / directory,
                         capture_output=True, text=True, env={**os.environ, "GOTOOLCHAIN": "local"})
    if out.returncode != 0 or not out.stdout.strip():
        raise ClusterError(f"cannot locate {module}'s source: {out.stderr.strip()[-300:]}")
    return Path(out.stdout.strip())


def _kustomize(directory: Path) -> str:
    proc = subprocess.run([_kubectl(), "kustomize", str(directory)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ClusterError(f"kustomize {directory}: {proc.stderr.strip()[-300:]}")
    return proc.stdout


def _write_configs() -> None:
    kwok = _module_dir("kwok") / "kustomize" / "stage"
    # The stages kwokctl itself runs fake nodes and pods with: nodes become Ready and keep a
    # lease, pods become Ready once bound, a Job's pods complete.
    stages = [_kustomize(kwok / part) for part in ("node/fast", "node/heartbeat-with-lease", "pod/fast")]
    # KWOK's own chaos stage: a pod labelled pod-container-running-failed.stage.kwok.x-k8s.io
    # fails with the reason, message and exit code its annotations give (how the e2e tier
    # shows what `make deploy` says about a failing Job).
    stages.append((kwok / "pod" / "chaos" / "pod-container-running-failed.yaml").read_text())
    (STATE / "kwok-stages.yaml").write_text("\n---\n".join(stages))
    (STATE / "lws-config.yaml").write_text(f"""apiVersion: config.lws.x-k8s.io/v1alpha1
kind: Configuration
leaderElection: {{leaderElect: false}}
internalCertManagement: {{enable: false}}
webhook: {{host: 127.0.0.1, port: {PORTS['lws-webhook']}, certDir: {STATE / 'pki' / 'lws'}}}
metrics: {{bindAddress: "0"}}
health: {{healthProbeBindAddress: 127.0.0.1:{PORTS['lws-health']}}}
""")


def _install_crds() -> None:
    crds = os.environ.get("SERVING_CATALOG_CRDS") or str(ROOT / "build" / "crds")
    files = sorted(Path(crds).glob("*.yaml"))
    if not files:
        raise ClusterError(f"no CRDs in {crds}: set SERVING_CATALOG_CRDS or run `make crds`")
    lws = _module_dir("lws") / "config" / "crd" / "bases"
    # The LWS controller also watches its DisaggregatedSet: its CRD from the controller's module.
    extra = [lws / "disaggregatedset.x-k8s.io_disaggregatedsets.yaml"]
    for path in [*files, *extra]:
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    deadline = time.monotonic() + 60
    while True:
        installed = json.loads(kubectl("get", "crd", "-o", "json"))["items"]
        waiting = [c["metadata"]["name"] for c in installed if not any(
            x["type"] == "Established" and x["status"] == "True" for x in (c.get("status") or {}).get("conditions") or [])]
        if not waiting:
            break
        if time.monotonic() > deadline:
            raise ClusterError(f"CRDs not established in 60s: {', '.join(waiting)}: see {_log('kube-apiserver')}")
        time.sleep(0.5)
    say(f"{len(files) + len(extra)} CRDs installed (from {crds})")


def _lws_webhooks(d: Path) -> None:
    """The LWS release's own webhook configurations, pointed at the controller on loopback."""
    docs = [doc for doc in _kustomize_docs(_module_dir("lws") / "config" / "webhook")
            if doc["kind"] in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")]
    bundle = base64.b64encode((d / "ca.crt").read_bytes()).decode()
    for doc in docs:
        doc["metadata"]["name"] = "lws-" + doc["metadata"]["name"]
        for hook in doc["webhooks"]:
            path = hook["clientConfig"]["service"]["path"]
            hook["clientConfig"] = {"url": f"https://127.0.0.1:{PORTS['lws-webhook']}{path}", "caBundle": bundle}
    kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))


def _kustomize_docs(directory: Path) -> list[dict]:
    return yamlio.load_all(_kustomize(directory))


@contextlib.contextmanager
def environment():
    """KUBECONFIG pointing here and the project's kubectl first on PATH (deploy.py runs
    `kubectl` as a user's shell would find it), for the duration."""
    before = {key: os.environ.get(key) for key in ("KUBECONFIG", "PATH")}
    os.environ["KUBECONFIG"] = str(KUBECONFIG)
    os.environ["PATH"] = f"{Path(_kubectl()).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def running() -> bool:
    return all(_alive(name) for name in PROCESSES) and KUBECONFIG.exists() and \
        _https_ok(PORTS["apiserver"], "/readyz", STATE / "pki")


def up() -> None:
    if running():
        say(f"running (KUBECONFIG={KUBECONFIG.relative_to(ROOT)})")
        return
    for component in COMPONENTS:
        build(component)
    (STATE / "logs").mkdir(parents=True, exist_ok=True)
    d = pki()
    write_kubeconfig(d)
    _write_configs()
    _start("etcd", d)
    _wait("etcd", lambda: _http_ok(f"http://127.0.0.1:{PORTS['etcd']}/health"))
    _start("kube-apiserver", d)
    _wait("kube-apiserver", lambda: _https_ok(PORTS["apiserver"], "/readyz", d), timeout=120)
    say("API server ready")
    _install_crds()
    for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
        _start(name, d)
    _wait("kube-controller-manager", lambda: _https_ok(PORTS["controller-manager"], "/healthz", d, client=False))
    _wait("kube-scheduler", lambda: _https_ok(PORTS["scheduler"], "/healthz", d, client=False))
    kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "Namespace",
                                                   "metadata": {"name": "lws-system"}}))
    _start("lws-controller", d)
    _wait("lws-controller", lambda: _http_ok(f"http://127.0.0.1:{PORTS['lws-health']}/readyz"))
    _lws_webhooks(d)
    from . import node_pools
    node_pools.install_cluster_defaults()
    _start("storage-provisioner", d)
    say(f"ready: export KUBECONFIG={KUBECONFIG}")


def down() -> None:
    for name in reversed(PROCESSES):
        if _alive(name):
            pid = int(_pidfile(name).read_text())
            try:
                os.killpg(pid, signal.SIGTERM)
            except OSError:
                pass
            for _ in range(50):
                if not _alive(name):
                    break
                time.sleep(0.1)
            else:
                os.killpg(pid, signal.SIGKILL)
        _pidfile(name).unlink(missing_ok=True)
    # The cluster's state goes with it; the built binaries stay cached.
    for part in ("etcd", "pids", "kubeconfig"):
        path = STATE / part
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    say("stopped")


def status() -> int:
    for name in PROCESSES:
        print(f"{name}: {'running' if _alive(name) else 'stopped'} (log {_log(name).relative_to(ROOT)})")
    return 0 if running() else 1


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "up"
    try:
        if command == "up":
            up()
        elif command == "down":
            down()
        elif command == "status":
            return status()
        else:
            print("usage: python -m catalog_tools.cluster up|down|status", file=sys.stderr)
            return 2
    except ClusterError as err:
        print(f"cluster: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

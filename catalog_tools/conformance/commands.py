"""Server command lines as the kubelet would run them.

Every container of a rendered entry that runs a server image (the servers table's
`image` or `sidecarImages`) outside a batch Job, with `$(VAR)` expanded from the
container's env the way the kubelet expands it, and a KServe runtime's container
merged with the InferenceService that uses it the way KServe merges them.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Iterable, Optional

from krm_functions import tables
from krm_functions.krmfn import KubeObject

from .envs import releases

SHELLS = ("sh", "bash", "/bin/sh", "/bin/bash")
_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")

# Values the cluster fills in: env the LeaderWorkerSet controller injects into every
# container of a group (LwsLeaderAddress, LwsGroupSize, LwsWorkerIndex in
# kubernetes-sigs/lws api/leaderworkerset/v1/leaderworkerset_types.go), and values from
# Secrets and the downward API (their contents never matter to a parser).
VALUE_FROM = {"secretKeyRef": "secret-value", "configMapKeyRef": "config-value",
              "fieldRef": "10.0.0.1", "resourceFieldRef": "1"}
# KServe's ServingRuntime templating: {{.Name}} is the InferenceService's name.
KSERVE_NAME = "{{.Name}}"


@dataclass
class CommandLine:
    entry: str
    where: str                 # Kind/name path container NAME
    server: str                # servers table row
    binary: str                # image role: the row's server image or a sidecar name
    image: str
    argv: list[str]            # command + args, expanded
    command: list[str] = field(default_factory=list)  # the container's own command part of argv
    shell: Optional[str] = None  # the script, when the container runs `sh -c SCRIPT`

    def __str__(self) -> str:
        return f"{self.entry}: {self.where}"

    @property
    def program_argv(self) -> list[str]:
        """What the container finally runs: the command itself, or, for `sh -c SCRIPT NAME
        ARGS...` whose script ends in `exec PROGRAM... "$@"`, that program with ARGS."""
        if self.shell is None:
            return self.argv
        last = [line.strip() for line in self.shell.strip().splitlines()][-1:]
        words = shlex.split(last[0]) if last else []
        if len(words) >= 3 and words[0] == "exec" and words[-1] == "$@":
            return words[1:-1] + self.argv[4:]
        return self.argv

    def script_commands(self, program: str) -> list[list[str]]:
        """The lines of the shell script that run `program`, split into words."""
        found = []
        for line in (self.shell or "").splitlines():
            words = line.split()
            if words[:1] == ["exec"]:
                words = words[1:]
            if words[:1] == [program]:
                found.append(shlex.split(" ".join(words)))
        return found


def expand(text: str, env: dict) -> str:
    """Kubernetes' $(VAR) expansion: a defined variable is replaced, `$$` is a literal `$`,
    an undefined reference stays as it is (k8s.io/kubernetes third_party/forked/golang/expansion)."""
    def one(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)
    return _REF.sub(one, text)


def container_env(container: dict, injected: dict) -> dict:
    """The container's environment in order, each value expanded with the ones before it."""
    env = dict(injected)
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = expand(str(var["value"]), env)
        elif "valueFrom" in var:
            source = next(iter(var["valueFrom"]), "")
            env[var["name"]] = VALUE_FROM.get(source, "value")
    return env


def server_images(images: Iterable[str] = ()) -> dict:
    """image -> (release row, binary): a server's image or named sidecar (servers table),
    or, among `images`, one of the other programs releases.yaml knows by repository."""
    found = {}
    for name, row in tables.table("servers").items():
        found.setdefault(row["image"], (name, name))
        for sidecar, image in (row.get("sidecarImages") or {}).items():
            found.setdefault(image, (name, sidecar))
    others = releases().get("images") or {}
    for image in images:
        repository = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
        if repository in others:
            found.setdefault(image, (others[repository], others[repository]))
    return found


def all_images(objs: Iterable[KubeObject]) -> list[str]:
    return [str(c.get("image")) for o in objs for t in o.pod_templates()
            for c in (t.spec.get("initContainers") or []) + (t.spec.get("containers") or [])]


def _merge_kserve(runtime: dict, model: dict) -> dict:
    """KServe's merge of the predictor's model into the runtime's kserve-container: env by
    name (the model's wins), the model's args after the runtime's."""
    merged = dict(runtime)
    env = {e["name"]: e for e in runtime.get("env") or []}
    env.update({e["name"]: e for e in model.get("env") or []})
    merged["env"] = list(env.values())
    merged["args"] = list(runtime.get("args") or []) + list(model.get("args") or [])
    return merged


def _lws_env(obj: KubeObject, role: Optional[str], worker_index: int) -> dict:
    if obj.kind != "LeaderWorkerSet":
        return {}
    size = obj.get("spec", "leaderWorkerTemplate", "size", default=1)
    return {"LWS_LEADER_ADDRESS": f"{obj.name}-0.{obj.name}.default", "LWS_GROUP_SIZE": str(size),
            "LWS_WORKER_INDEX": str(worker_index)}


def _line(entry: str, where: str, server: str, binary: str, container: dict, injected: dict,
          kserve_name: Optional[str] = None) -> CommandLine:
    env = container_env(container, injected)
    words = [str(w) for w in (container.get("command") or []) + (container.get("args") or [])]
    if kserve_name is not None:
        words = [w.replace(KSERVE_NAME, kserve_name) for w in words]
    argv = [expand(w, env) for w in words]
    shell = argv[2] if len(argv) >= 3 and argv[0] in SHELLS and argv[1] == "-c" else None
    command = argv[: len(container.get("command") or [])]
    return CommandLine(entry, where, server, binary, str(container.get("image")), argv, command, shell)


def command_lines(entry: str, docs: Iterable[dict]) -> list[CommandLine]:
    """Every server and sidecar command line of one rendered entry."""
    objs = [KubeObject(d) for d in docs]
    images = server_images(all_images(objs))
    runtimes = {o.name: o for o in objs if o.kind in ("ServingRuntime", "ClusterServingRuntime")}
    lines: list[CommandLine] = []
    for obj in objs:
        if obj.kind in ("Job", "CronJob") or obj.kind in ("ServingRuntime", "ClusterServingRuntime"):
            continue
        if obj.kind == "InferenceService":
            lines += _kserve_lines(entry, obj, runtimes, images)
            continue
        if obj.kind == "LLMInferenceService":
            lines += _kserve_llm_lines(entry, obj, images)
            continue
        for tmpl in obj.pod_templates():
            indexes = [1] if tmpl.role == "worker" else [0]
            for c in (tmpl.spec.get("initContainers") or []) + (tmpl.spec.get("containers") or []):
                if c.get("image") not in images:
                    continue
                server, binary = images[c["image"]]
                for index in indexes:
                    where = f"{obj.kind}/{obj.name} {tmpl.path} container {c.get('name')}"
                    lines.append(_line(entry, where, server, binary, c, _lws_env(obj, tmpl.role, index)))
    return lines


def _kserve_lines(entry: str, isvc: KubeObject, runtimes: dict, images: dict) -> list[CommandLine]:
    model = isvc.get("spec", "predictor", "model") or {}
    runtime = runtimes.get(model.get("runtime"))
    if runtime is None:
        return []
    lines = []
    for c in runtime.get("spec", "containers", default=[]) or []:
        if c.get("image") not in images:
            continue
        server, binary = images[c["image"]]
        merged = _merge_kserve(c, model) if c.get("name") == "kserve-container" else c
        where = f"InferenceService/{isvc.name} with {runtime.kind}/{runtime.name} container {c.get('name')}"
        lines.append(_line(entry, where, server, binary, merged, {}, kserve_name=isvc.name))
    return lines


def _kserve_llm_lines(entry: str, obj: KubeObject, images: dict) -> list[CommandLine]:
    """The `main` containers of an LLMInferenceService as KServe's well-known configs run
    them (releases.yaml `kserve.llmInferenceService`): its words, then VLLM_ADDITIONAL_ARGS
    and the container's args, split again as the script's `eval` splits them."""
    config = releases()["kserve"]["llmInferenceService"]
    lines = []
    prefill = obj.get("spec", "prefill", default=None) is not None
    for tmpl in obj.pod_templates():
        main = tmpl.container(config["container"])
        if main is None or main.get("image") not in images:
            continue
        server, binary = images[main["image"]]
        role = tmpl.role or ("decode" if prefill else "single")
        words = [w.format(name=obj.get("spec", "model", "name", default=""), namespace=obj.namespace or "default")
                 for w in config["roles"][role]]
        tensor = (tmpl.meta.get("parallelism") or {}).get("tensor")
        if tensor:
            words += [config["tensor"], str(tensor)]
        env = container_env(main, {})
        args = [expand(str(w), env) for w in main.get("args") or []]
        text = " ".join([*(shlex.quote(w) for w in words), env.get("VLLM_ADDITIONAL_ARGS", ""), *args])
        where = f"LLMInferenceService/{obj.name} {tmpl.spec_path} container {main.get('name')}"
        lines.append(CommandLine(entry, where, server, binary, str(main["image"]), shlex.split(text)))
    return lines


def flags(line: CommandLine) -> list[str]:
    """The `--flag` names a command line uses (from `--flag=value` or `--flag value`);
    inside a shell script, those of every word of the script."""
    words = line.argv
    if line.shell is not None:
        try:
            words = shlex.split(line.shell.replace("${", "{"), comments=True)
        except ValueError:
            words = line.shell.split()
    return [w.split("=", 1)[0] for w in words if w.startswith("--") and len(w) > 2]

"""KubeObject: a thin, typed view over one resource's dict."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Optional, Union

from .results import ResourceRef

PathPart = Union[str, int]
_MISSING = object()

# Annotations kustomize/kpt use to track items; kept on inputs, never put on new objects.
INTERNAL_ANNOTATION_PREFIXES = (
    "config.kubernetes.io/index",
    "config.kubernetes.io/path",
    "config.kubernetes.io/id",
    "internal.config.kubernetes.io/",
    "kustomize.config.k8s.io/",
    "config.k8s.io/id",
)
# Annotations that make kustomize/kpt treat an object as function config, not output.
LOCAL_ANNOTATIONS = ("config.kubernetes.io/local-config", "config.kubernetes.io/function")


def _split(path: tuple) -> tuple:
    if len(path) == 1 and isinstance(path[0], str) and "." in path[0]:
        return tuple(int(p) if p.isdigit() else p for p in path[0].split("."))
    return path


class KubeObject:
    """Wraps a resource dict in place: edits go straight into the dict."""

    __slots__ = ("data",)

    def __init__(self, data: dict):
        if not isinstance(data, dict):
            raise TypeError("a Kubernetes object must be a mapping")
        self.data = data

    # identity ---------------------------------------------------------------
    @property
    def api_version(self) -> str:
        return str(self.data.get("apiVersion", ""))

    @property
    def kind(self) -> str:
        return str(self.data.get("kind", ""))

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def name(self) -> str:
        return str(self.get("metadata", "name", default=""))

    @property
    def namespace(self) -> Optional[str]:
        return self.get("metadata", "namespace")

    @property
    def ref(self) -> ResourceRef:
        return ResourceRef(self.api_version, self.kind, self.name, self.namespace)

    def is_kind(self, kind: str, group: Optional[str] = None) -> bool:
        return self.kind == kind and (group is None or self.group == group)

    @property
    def labels(self) -> dict:
        return self.get("metadata", "labels", default=None) or {}

    @property
    def annotations(self) -> dict:
        return self.get("metadata", "annotations", default=None) or {}

    def set_label(self, key: str, value: str) -> None:
        self.setdefault_map("metadata", "labels")[key] = value

    def set_annotation(self, key: str, value: str) -> None:
        self.setdefault_map("metadata", "annotations")[key] = value

    # nested access --------------------------------------------------------
    def get(self, *path: PathPart, default: Any = None) -> Any:
        node: Any = self.data
        for part in _split(path):
            if isinstance(part, int):
                if not isinstance(node, list) or not -len(node) <= part < len(node):
                    return default
                node = node[part]
            else:
                if not isinstance(node, dict) or part not in node:
                    return default
                node = node[part]
        return node

    def has(self, *path: PathPart) -> bool:
        return self.get(*path, default=_MISSING) is not _MISSING

    def set(self, value: Any, *path: PathPart) -> None:
        """Set a value, creating intermediate maps as needed."""
        path = _split(path)
        parent = self.setdefault_map(*path[:-1]) if len(path) > 1 else self.data
        parent[path[-1]] = value

    def setdefault_map(self, *path: PathPart) -> dict:
        node: Any = self.data
        for part in _split(path):
            if isinstance(part, int):
                node = node[part]
                continue
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        return node

    def setdefault_list(self, *path: PathPart) -> list:
        path = _split(path)
        parent = self.setdefault_map(*path[:-1]) if len(path) > 1 else self.data
        if not isinstance(parent.get(path[-1]), list):
            parent[path[-1]] = []
        return parent[path[-1]]

    def delete(self, *path: PathPart) -> bool:
        path = _split(path)
        parent = self.get(*path[:-1]) if len(path) > 1 else self.data
        if isinstance(parent, dict) and path[-1] in parent:
            del parent[path[-1]]
            return True
        if isinstance(parent, list) and isinstance(path[-1], int) and -len(parent) <= path[-1] < len(parent):
            del parent[path[-1]]
            return True
        return False

    # workloads --------------------------------------------------------------
    def pod_templates(self) -> list["PodTemplate"]:
        """Every pod template of this workload, whatever its kind."""
        return list(_pod_templates(self))

    def __repr__(self) -> str:
        return f"KubeObject({self.ref})"


@dataclass
class PodTemplate:
    """A pod template inside a workload.

    `meta` holds labels/annotations, `spec` the pod spec (containers, volumes,
    nodeSelector, ...). For KServe objects the two are the same mapping.
    `role` tells LeaderWorkerSet leader from worker; `path` is the field path
    of the template, for messages. `model` is the KServe predictor's model
    container, which KServe merges into the runtime's `kserve-container`.
    """

    owner: KubeObject
    path: str
    meta: dict
    spec: dict
    role: Optional[str] = None
    model: Optional[dict] = None
    pod_path: Optional[str] = None  # where the pod spec is, when not at path or path.spec

    @property
    def labels(self) -> dict:
        return self.meta.get("labels") or {}

    def set_label(self, key: str, value: str) -> None:
        self.meta.setdefault("labels", {})[key] = value

    @property
    def annotations(self) -> dict:
        return self.meta.get("annotations") or {}

    def set_annotation(self, key: str, value: str) -> None:
        if not isinstance(self.meta.get("annotations"), dict):
            self.meta["annotations"] = {}
        self.meta["annotations"][key] = value

    def containers(self) -> list[dict]:
        found = list(self.spec.get("containers") or [])
        if self.model is not None:
            found.append(self.model)
        return found

    def container(self, name: str) -> Optional[dict]:
        """The container of that name; KServe's model counts as `kserve-container`."""
        for c in self.spec.get("containers") or []:
            if c.get("name") == name:
                return c
        if self.model is not None and name == "kserve-container":
            return self.model
        return None

    def container_names(self) -> list[str]:
        names = [c.get("name", "") for c in self.spec.get("containers") or []]
        return names + (["kserve-container"] if self.model is not None else [])

    def container_path(self, name: str) -> str:
        for i, c in enumerate(self.spec.get("containers") or []):
            if c.get("name") == name:
                return f"{self.spec_path}.containers[{i}]"
        return f"{self.spec_path}.model"

    @property
    def spec_path(self) -> str:
        if self.pod_path:
            return self.pod_path
        return self.path if self.meta is self.spec else f"{self.path}.spec"

    @property
    def labels_path(self) -> str:
        """Where the pods' labels are: path.metadata.labels, or path.labels beside an inline spec."""
        return f"{self.path}.labels" if self.meta is self.spec or self.pod_path else f"{self.path}.metadata.labels"

    def list_field(self, name: str) -> list:
        if not isinstance(self.spec.get(name), list):
            self.spec[name] = []
        return self.spec[name]

    def map_field(self, name: str) -> dict:
        if not isinstance(self.spec.get(name), dict):
            self.spec[name] = {}
        return self.spec[name]


def _template(owner: KubeObject, path: str, node: Any, role: Optional[str] = None) -> Iterator[PodTemplate]:
    if isinstance(node, dict):
        if not isinstance(node.get("metadata"), dict):
            node["metadata"] = {}
        if not isinstance(node.get("spec"), dict):
            node["spec"] = {}
        yield PodTemplate(owner, path, node["metadata"], node["spec"], role)


def _pod_spec(owner: KubeObject, path: str, parent: dict, field: str, role: Optional[str] = None) -> Iterator[PodTemplate]:
    """A bare PodSpec at parent[field] whose labels and annotations are the parent's own."""
    node = parent.get(field)
    if isinstance(node, dict):
        yield PodTemplate(owner, path, parent, node, role, pod_path=f"{path}.{field}")


def _inline(owner: KubeObject, path: str, node: Any, role: Optional[str] = None, model: Any = None) -> Iterator[PodTemplate]:
    if isinstance(node, dict):
        yield PodTemplate(owner, path, node, node, role, model if isinstance(model, dict) else None)


def _pod_templates(obj: KubeObject) -> Iterator[PodTemplate]:
    kind, group, spec = obj.kind, obj.group, obj.get("spec")
    if not isinstance(spec, dict):
        return
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job") and group in ("apps", "batch"):
        yield from _template(obj, "spec.template", spec.get("template"))
    elif kind == "CronJob" and group == "batch":
        yield from _template(obj, "spec.jobTemplate.spec.template", (spec.get("jobTemplate") or {}).get("spec", {}).get("template"))
    elif kind == "LeaderWorkerSet" and group == "leaderworkerset.x-k8s.io":
        lwt = spec.get("leaderWorkerTemplate") or {}
        base = "spec.leaderWorkerTemplate"
        yield from _template(obj, f"{base}.leaderTemplate", lwt.get("leaderTemplate"), "leader")
        yield from _template(obj, f"{base}.workerTemplate", lwt.get("workerTemplate"), "worker")
    elif kind == "JobSet" and group == "jobset.x-k8s.io":
        for i, rj in enumerate(spec.get("replicatedJobs") or []):
            tmpl = ((rj.get("template") or {}).get("spec") or {}).get("template")
            yield from _template(obj, f"spec.replicatedJobs[{i}].template.spec.template", tmpl, rj.get("name"))
    elif kind == "InferenceService" and group == "serving.kserve.io":
        predictor = spec.get("predictor")
        if isinstance(predictor, dict):
            yield from _inline(obj, "spec.predictor", predictor, "leader" if predictor.get("workerSpec") else None,
                               predictor.get("model"))
            yield from _inline(obj, "spec.predictor.workerSpec", predictor.get("workerSpec"), "worker")
    elif kind == "LLMInferenceService" and group == "serving.kserve.io":
        # PodSpecs whose pods' labels sit beside them (spec.labels, spec.prefill.labels).
        # Multi-node workers (spec.worker) are not among the catalog's targets yet.
        yield from _pod_spec(obj, "spec", spec, "template")
        prefill = spec.get("prefill")
        if isinstance(prefill, dict):
            yield from _pod_spec(obj, "spec.prefill", prefill, "template", "prefill")
    elif kind in ("ServingRuntime", "ClusterServingRuntime") and group == "serving.kserve.io":
        yield from _inline(obj, "spec", spec, "leader" if spec.get("workerSpec") else None)
        yield from _inline(obj, "spec.workerSpec", spec.get("workerSpec"), "worker")

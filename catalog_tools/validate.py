"""Strict offline validation of rendered manifests, as an API server would do it.

Built-in kinds are checked against kubernetes-validate's *strict* JSON schemas
of Kubernetes KUBERNETES_VERSION (unknown fields are errors). Custom resources
are checked against the openAPIV3Schema of their CRD, read from the directory
named by $SERVING_CATALOG_CRDS (`scripts/fetch-crds` downloads the pinned ones),
made strict the same way. Every error is reported, not only the first, one line
each: "<Kind>/<name>: <field.path>: <message>".

Kinds a cloud installs into its own clusters (PROVIDER_CRDS: GKE's networking.gke.io
policies) are validated when their CRD is in the directory (`scripts/fetch-crds`
downloads them); without it they are listed as unvalidated (`Validator.unvalidated`),
not failed, so a CRD directory of the portable projects only still checks the rest.

Not checked (no API server here): CEL rules (x-kubernetes-validations), `format`,
list-map key uniqueness, defaulting, admission webhooks.

    python -m catalog_tools.validate [--crds DIR] FILE|- ...
"""

from __future__ import annotations

import argparse
import difflib
import functools
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Union

import jsonschema
import yaml
from referencing import Registry, Resource

from krm_functions.krmfn import yamlio

CRD_DIR_ENV = "SERVING_CATALOG_CRDS"
KUBERNETES_VERSION = "1.34.0"  # DRA (resource.k8s.io/v1) is GA from 1.34

_DEFS_URI = "https://kubernetes.io/api/_definitions.json"  # $id of kubernetes-validate's definitions
_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_MAX_MESSAGE = 240  # jsonschema messages repeat the instance; keep one line readable

FieldPath = tuple[Union[str, int], ...]  # a field path inside an object
Check = Callable[[dict], list[tuple[FieldPath, str]]]
GVK = tuple[str, str, str]  # (group, version, kind)

# Groups whose CRDs a provider installs in its clusters (not a project a user deploys):
# the CRD file `scripts/fetch-crds` downloads for each kind.
PROVIDER_CRDS: dict[tuple[str, str], str] = {
    ("networking.gke.io", "HealthCheckPolicy"): "networking.gke.io_healthcheckpolicies.yaml",
    ("networking.gke.io", "GCPBackendPolicy"): "networking.gke.io_gcpbackendpolicies.yaml",
}


def split_api_version(api_version: str) -> tuple[str, str]:
    """"apps/v1" -> ("apps", "v1"); "v1" -> ("", "v1")."""
    group, _, version = api_version.rpartition("/")
    return group, version


def format_path(path: Iterable[Union[str, int]]) -> str:
    """("spec", "containers", 0, "image") -> "spec.containers[0].image"."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_$][\w$-]*", part):
            out += f".{part}" if out else part
        else:  # e.g. annotation keys: metadata.annotations["prometheus.io/port"]
            out += f"[{json.dumps(part)}]"
    return out or "<root>"


class Validator:
    """Validates Kubernetes objects (dicts); schemas are loaded and compiled once, lazily."""

    def __init__(self, crd_dir: Union[str, Path, None] = None):
        if crd_dir is None:
            crd_dir = os.environ.get(CRD_DIR_ENV) or None
        self.crd_dir = Path(crd_dir) if crd_dir is not None else None
        if self.crd_dir is not None and not self.crd_dir.is_dir():
            raise NotADirectoryError(f"CRD directory {self.crd_dir} does not exist")
        self._checks: dict[tuple[str, str], Check] = {}  # compiled per (apiVersion, kind)
        self._object_meta: jsonschema.protocols.Validator | None = None
        # "<Kind>/<name>: why" of provider kinds left unchecked (their CRD is not in crd_dir)
        self.unvalidated: list[str] = []

    # -- public API -------------------------------------------------------------

    def validate(self, obj: Any) -> list[str]:
        """Problems of one object, "<Kind>/<name>: <field.path>: <message>" each; [] if valid."""
        if not isinstance(obj, dict):
            return [f"?/?: <root>: not a mapping but {type(obj).__name__}"]
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        meta = obj.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        label = f"{kind or '?'}/{name or '?'}"

        problems: list[tuple[FieldPath, str]] = []
        if not (isinstance(api_version, str) and api_version):
            problems.append((("apiVersion",), "required field is missing"))
        if not (isinstance(kind, str) and kind):
            problems.append((("kind",), "required field is missing"))
        if not problems:
            # The API server would accept generateName; a catalog manifest needs a name.
            if not name and not (isinstance(meta, dict) and meta.get("generateName")):
                problems.append((("metadata", "name"), "required field is missing"))
            missing = self._provider_crd_missing(api_version, kind)
            if missing:
                self.unvalidated.append(f"{label}: not validated: {missing}")
            else:
                problems += self._check(api_version, kind)(obj)

        # Unique, by path; list indexes in numeric order.
        problems = sorted(dict.fromkeys(problems), key=lambda p: [(isinstance(x, str), x) for x in p[0]])
        return [f"{label}: {format_path(path)}: {message}" for path, message in problems]

    def validate_all(self, objs: Iterable[Any]) -> list[str]:
        """Problems of all objects, in order."""
        return [problem for obj in objs for problem in self.validate(obj)]

    # -- choosing a schema ------------------------------------------------------

    def _provider_crd_missing(self, api_version: str, kind: str) -> str:
        """Why a provider-installed kind cannot be checked here, or "" if it can."""
        crd = PROVIDER_CRDS.get((split_api_version(api_version)[0], kind))
        if crd is None or (self.crd_dir is not None and (self.crd_dir / crd).is_file()):
            return ""
        return f"the provider installs its CRD; {crd} is not in the CRD directory (scripts/fetch-crds downloads it)"

    def _check(self, api_version: str, kind: str) -> Check:
        key = (api_version, kind)
        if key not in self._checks:
            self._checks[key] = self._make_check(api_version, kind)
        return self._checks[key]

    def _make_check(self, api_version: str, kind: str) -> Check:
        group, version = split_api_version(api_version)
        gvk = (group, version, kind)
        builtin = _builtin_definitions()[1]
        unknown = _fail(("kind",), f"unknown kind {api_version}/{kind}: no schema")
        # Built-in groups first: core-only use never pays for parsing the CRDs.
        if group in {g for g, _, _ in builtin}:
            return self._builtin_check(builtin[gvk]) if gvk in builtin else unknown
        if self.crd_dir is None:
            return _fail(("kind",), f"no CRD directory: set {CRD_DIR_ENV}")
        crds = _load_crds(self.crd_dir.resolve())
        return self._crd_check(crds[gvk]) if gvk in crds else unknown

    # -- built-in kinds: kubernetes-validate's strict schemas --------------------

    def _definition_validator(self, name: str) -> jsonschema.protocols.Validator:
        # The same validator class kubernetes_validate.validate() uses for these schemas.
        registry = _builtin_definitions()[0]
        return jsonschema.Draft202012Validator({"$ref": f"{_DEFS_URI}#/$defs/{name}"}, registry=registry)

    def _builtin_check(self, name: str) -> Check:
        validator = self._definition_validator(name)
        return lambda obj: list(_problems(validator.iter_errors(obj)))

    # -- custom resources: CRD schemas ----------------------------------------------

    def _crd_check(self, openapi: dict) -> Check:
        schema = _strict(openapi)
        # Root metadata is `type: object` in every CRD; the API server checks it as
        # ObjectMeta, so do that with the built-in definition instead.
        if isinstance(schema.get("properties"), dict) and "metadata" in schema["properties"]:
            schema["properties"]["metadata"] = {}
        # OpenAPI 3.0 schemas are draft-4 JSON Schema (e.g. boolean exclusiveMinimum).
        validator = jsonschema.Draft4Validator(schema)
        meta = self._object_meta_validator()

        def check(obj: dict) -> list[tuple[FieldPath, str]]:
            problems = list(_problems(validator.iter_errors(obj)))
            if "metadata" in obj:
                problems += _problems(meta.iter_errors(obj["metadata"]), prefix=("metadata",))
            return problems

        return check

    def _object_meta_validator(self) -> jsonschema.protocols.Validator:
        if self._object_meta is None:
            self._object_meta = self._definition_validator(_OBJECT_META)
        return self._object_meta


# Schema files are read once per process, however many Validators there are
# (e.g. one per test module): the CRDs take ~2 s to parse, most of it KServe's.


@functools.lru_cache(maxsize=None)
def _builtin_definitions() -> tuple[Registry, dict[GVK, str]]:
    """kubernetes-validate's strict _definitions.json for KUBERNETES_VERSION, as a
    registry, and its top-level kinds: the definitions with x-kubernetes-group-version-kind."""
    from kubernetes_validate import utils as kv  # slow-ish import, only when needed
    from packaging.version import Version

    # kubernetes_validate.validate() compares versions as strings; use Version.
    wanted = Version(KUBERNETES_VERSION).release[:2]
    known = [v for v in kv.all_versions() if Version(v).release[:2] <= wanted]
    if not known:
        raise RuntimeError(f"kubernetes-validate has no schemas for Kubernetes {KUBERNETES_VERSION}")
    definitions = kv.schema_contents(f"kubernetes-json-schema/v{known[-1]}-local-strict/_definitions.json",
                                     KUBERNETES_VERSION)
    kinds = {
        (gvk["group"], gvk["version"], gvk["kind"]): name
        for name, schema in definitions["$defs"].items()
        for gvk in schema.get("x-kubernetes-group-version-kind", [])
    }
    return Resource.from_contents(definitions) @ Registry(), kinds


@functools.lru_cache(maxsize=None)
def _load_crds(crd_dir: Path) -> dict[GVK, dict]:
    """openAPIV3Schema of every served version of every CRD in the directory."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crds: dict[GVK, dict] = {}
    where: dict[GVK, Path] = {}
    for path in sorted(crd_dir.glob("*.y*ml")):
        with open(path, "rb") as f:
            docs = list(yaml.load_all(f, Loader=loader))
        for doc in docs:
            if not (isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition"):
                continue
            spec = doc["spec"]
            for v in spec["versions"]:
                if not v.get("served", True):
                    continue  # the API server would refuse it
                gvk = (spec["group"], v["name"], spec["names"]["kind"])
                if gvk in where:
                    raise ValueError(f"{path} and {where[gvk]} both define {'/'.join(gvk)}")
                where[gvk] = path
                crds[gvk] = v.get("schema", {}).get("openAPIV3Schema", {})
    return crds


def _fail(path: FieldPath, message: str) -> Check:
    return lambda obj: [(path, message)]


def _problems(errors: Iterable[jsonschema.ValidationError],
              prefix: FieldPath = ()) -> Iterator[tuple[FieldPath, str]]:
    """(path, message) per problem; unknown and missing fields get their own path."""
    for error in errors:
        path = prefix + tuple(error.absolute_path)
        instance, schema = error.instance, error.schema
        unknown_fields = error.validator == "additionalProperties" and error.validator_value is False
        if unknown_fields and isinstance(instance, dict):
            known = list(schema.get("properties", {}))
            patterns = list(schema.get("patternProperties", {}))
            for key in instance:
                if key not in known and not any(re.search(p, key) for p in patterns):
                    hint = _close_match(str(key), known)
                    yield path + (key,), "unknown field" + (f" (did you mean {hint}?)" if hint else "")
        elif error.validator == "required" and isinstance(instance, dict):
            for key in error.validator_value:
                if key not in instance:
                    yield path + (key,), "required field is missing"
        else:
            message = " ".join(error.message.split())
            if len(message) > _MAX_MESSAGE:
                message = message[: _MAX_MESSAGE - 1] + "…"
            yield path, message


def _close_match(word: str, candidates: list[str]) -> str | None:
    """The likely intended field name; case-insensitive, as typos often are (storageURI)."""
    lower = {c.lower(): c for c in candidates}
    match = difflib.get_close_matches(word.lower(), list(lower), n=1)
    return lower[match[0]] if match else None


def _strict(schema: Any, structural: bool = True) -> Any:
    """A copy of a CRD's openAPIV3Schema as strict JSON Schema.

    Objects with `properties` reject unknown fields, unless they preserve them.
    Only structural positions are closed: a branch of anyOf/allOf/oneOf/not may
    name a subset of the fields (structural schemas declare them outside), so
    closing it would reject valid objects. Descriptions are dropped (memory).
    """
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "description":
            continue
        if key in ("properties", "patternProperties") and isinstance(value, dict):
            out[key] = {k: _strict(v, structural) for k, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _strict(value, structural)
        elif key == "items" and isinstance(value, list):
            out[key] = [_strict(v, structural) for v in value]
        elif key in ("anyOf", "allOf", "oneOf") and isinstance(value, list):
            out[key] = [_strict(v, False) for v in value]
        elif key == "not":
            out[key] = _strict(value, False)
        else:
            out[key] = value

    if out.get("x-kubernetes-int-or-string"):
        # Usually anyOf: [{type: integer}, {type: string}]; a plain type list
        # gives shorter messages. Other constraints (pattern) apply to strings only.
        branches = out.get("anyOf")
        if branches is None or all(set(b) == {"type"} for b in branches):
            out.pop("anyOf", None)
            out["type"] = ["integer", "string"]
    if out.get("nullable") and "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = [*types, "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    if structural and isinstance(out.get("properties"), dict):
        if out.get("x-kubernetes-embedded-resource"):
            # An embedded object always may carry its own apiVersion, kind and metadata.
            for field, sub in (("apiVersion", {"type": "string"}), ("kind", {"type": "string"}),
                               ("metadata", {"type": "object"})):
                out["properties"].setdefault(field, sub)
        if "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    return out


def _read(name: str) -> list[Any]:
    text = sys.stdin.read() if name == "-" else Path(name).read_text()
    docs = []
    for doc in yamlio.load_all(text):  # YAML read the way kustomize reads it
        # `kubectl get -o yaml` style lists hold the objects in items.
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            docs.extend(doc["items"])
        else:
            docs.append(doc)
    return docs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m catalog_tools.validate", description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", metavar="FILE", help="multi-document YAML; - for standard input")
    parser.add_argument("--crds", metavar="DIR", help=f"directory of CRD files (default: ${CRD_DIR_ENV})")
    args = parser.parse_args(argv)

    validator = Validator(args.crds)
    total = bad = problems = 0
    for name in args.files:
        for obj in _read(name):
            found = validator.validate(obj)
            total += 1
            bad += bool(found)
            problems += len(found)
            for problem in found:
                print(f"{name}: {problem}" if len(args.files) > 1 else problem)
    for line in validator.unvalidated:
        print(line)
    if bad:
        print(f"{problems} problem{'s' if problems > 1 else ''} in {bad} of {total} objects")
        return 1
    print(f"{total} objects valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())

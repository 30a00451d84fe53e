"""The Runner: pick a function from the functionConfig, run it, write the result.

Contract (stricter than kustomize and kpt, which do not fail on error results):
- exit 0 only when no error result was produced;
- on failure, one readable line per problem on stderr, no traceback, and an
  output ResourceList with `items: []`, so no half-modified object escapes.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

from . import config as configlib
from . import shapes
from . import resourcelist, yamlio
from .kubeobject import INTERNAL_ANNOTATION_PREFIXES, LOCAL_ANNOTATIONS, KubeObject
from .results import ERROR, INFO, WARNING, Field, FunctionError, ResourceRef, Result


@dataclass
class Context:
    """What a function sees besides its config: the items, and a place for results."""

    items: list[KubeObject]
    config_ref: Optional[ResourceRef] = None
    results: list[Result] = field(default_factory=list)
    # What one step of a Render call tells the later ones (e.g. the context length a
    # ModelSource intent sets, for the Accelerator's memory fit): never read back from output.
    facts: dict = field(default_factory=dict)
    # The registry's functions by kind: a function that composes others (llm-d's ModelService)
    # calls them through here, never by importing their modules.
    functions: dict = field(default_factory=dict)

    def call(self, kind: str, spec: dict, path: str) -> None:
        """Run another function's transform on these items; its problems are this config's, at `path`."""
        fn = self.functions[kind]
        try:
            fn.transform(self, configlib.validate(fn.spec_schema, spec))
        except FunctionError as err:
            raise FunctionError(*[Result(f"{path}: {r.message}", r.severity, r.resourceRef,
                                         r.field if r.resourceRef else Field(path)) for r in err.results]) from None

    def error(self, message: str, obj: Optional[KubeObject] = None, path: Optional[str] = None, **kw: Any) -> None:
        self._add(ERROR, message, obj, path, kw)

    def warning(self, message: str, obj: Optional[KubeObject] = None, path: Optional[str] = None, **kw: Any) -> None:
        self._add(WARNING, message, obj, path, kw)

    def info(self, message: str, obj: Optional[KubeObject] = None, path: Optional[str] = None, **kw: Any) -> None:
        self._add(INFO, message, obj, path, kw)

    def _add(self, severity: str, message: str, obj: Optional[KubeObject], path: Optional[str], kw: dict) -> None:
        ref = obj.ref if obj is not None else self.config_ref
        fld = Field(path, kw.get("current"), kw.get("proposed")) if path else None
        self.results.append(Result(message, severity, ref, fld, tags=kw.get("tags") or {}))

    @property
    def failed(self) -> bool:
        return any(r.severity == ERROR for r in self.results)

    def add(self, data: dict) -> KubeObject:
        """Add a generated object, replacing one of the same identity (so reruns are idempotent)."""
        new = KubeObject(data)
        annotations = new.get("metadata", "annotations")
        if isinstance(annotations, dict):
            for key in [k for k in annotations if k.startswith(INTERNAL_ANNOTATION_PREFIXES) or k in LOCAL_ANNOTATIONS]:
                del annotations[key]
        key = _identity(new)
        for i, old in enumerate(self.items):
            if _identity(old) == key:
                # Keep kustomize's tracking annotations of the object being replaced.
                kept = {k: v for k, v in old.annotations.items() if k.startswith(INTERNAL_ANNOTATION_PREFIXES)}
                for k, v in kept.items():
                    new.set_annotation(k, v)
                self.items[i] = new
                return new
        self.items.append(new)
        return new

    def find(self, kind: str, name: str, namespace: Optional[str] = None) -> Optional[KubeObject]:
        for obj in self.items:
            if obj.kind == kind and obj.name == name and (namespace is None or obj.namespace == namespace):
                return obj
        return None


def _identity(obj: KubeObject) -> tuple:
    return (obj.group, obj.kind, obj.namespace or "", obj.name)


@dataclass(frozen=True)
class Function:
    """A KRM function: a typed config schema and a transform of the items."""

    kind: str
    summary: str
    spec_schema: dict
    example: dict
    transform: Callable[[Context, dict], None]
    api_version: str = ""

    @functools.cached_property
    def schema(self) -> dict:
        return configlib.envelope(self.api_version, self.kind, self.spec_schema)

    def example_config(self) -> dict:
        return {"apiVersion": self.api_version, "kind": self.kind,
                "metadata": {"name": self.kind.lower()}, "spec": self.example}

    def help_text(self) -> str:
        return (f"{self.kind} ({self.api_version}): {self.summary}\n\n"
                f"Config schema (JSON Schema, YAML):\n{yamlio.dump(self.schema)}\n"
                f"Example config:\n{yamlio.dump(self.example_config())}")


class Registry:
    def __init__(self, api_version: str):
        self.api_version = api_version
        self._functions: dict[str, Function] = {}

    def register(self, fn: Function) -> Function:
        fn = Function(fn.kind, fn.summary, fn.spec_schema, fn.example, fn.transform, self.api_version)
        self._functions[fn.kind] = fn
        return fn

    def get(self, kind: str) -> Optional[Function]:
        return self._functions.get(kind)

    def functions(self) -> dict[str, Function]:
        return dict(self._functions)

    def kinds(self) -> list[str]:
        return sorted(self._functions)

    def select(self, config: Optional[dict]) -> Function:
        if not config:
            raise FunctionError(Result("functionConfig: missing; pass one in the ResourceList or with --config FILE"))
        api_version, kind = config.get("apiVersion"), config.get("kind")
        ref = ResourceRef(str(api_version or ""), str(kind or ""), str(_metadata(config).get("name", "")))
        fn = self._functions.get(kind) if api_version == self.api_version else None
        if fn is None:
            raise FunctionError(Result(
                f"unknown function config {api_version}/{kind}: expected apiVersion {self.api_version} "
                f"and kind one of {', '.join(self.kinds())}", ERROR, ref, Field("kind", kind)))
        return fn


def _metadata(config: dict) -> dict:
    """The config's metadata when it is a mapping (the schema reports it otherwise)."""
    meta = config.get("metadata")
    return meta if isinstance(meta, dict) else {}


def run(registry: Registry, text: str | bytes, config: Optional[dict] = None) -> tuple[str, list[Result], bool]:
    """Run one function over a ResourceList (or bare stream). Returns (output, results, ok)."""
    rl: Optional[resourcelist.ResourceList] = None
    try:
        rl = resourcelist.parse(text)
        if config is not None:
            rl.function_config = config
        fn = registry.select(rl.function_config)
        meta = _metadata(rl.function_config)
        ref = ResourceRef(fn.api_version, fn.kind, str(meta.get("name", "")), meta.get("namespace"))
        spec = configlib.validate(fn.schema, rl.function_config, ref)["spec"]
        shapes.check(rl.items)
        ctx = Context(rl.items, ref, functions=registry.functions())
        try:
            fn.transform(ctx, spec)
        except FunctionError as err:
            # Problems raised without an object are problems of the config itself.
            ctx.results.extend(r if r.resourceRef else dataclasses.replace(r, resourceRef=ref) for r in err.results)
        rl.results = ctx.results
        if ctx.failed:
            raise FunctionError(*ctx.results)
        return resourcelist.serialize(rl), rl.results, True
    except FunctionError as err:
        failed = resourcelist.ResourceList([], None, err.results, bare=rl.bare if rl else False)
        return resourcelist.serialize(failed), err.results, False


def report(results: Iterable[Result], stream: Any) -> None:
    """Errors and warnings, one line each: kustomize does not show results."""
    for r in results:
        if r.severity in (ERROR, WARNING):
            stream.write(r.line() + "\n")


def load_config_file(path: str, flag: str = "--config") -> dict:
    try:
        with open(path, "rb") as handle:
            docs = yamlio.load_krm_all(handle.read())
    except OSError as err:
        raise FunctionError(Result(f"{flag} {path}: {err.strerror}")) from None
    except Exception as err:  # malformed YAML
        raise FunctionError(Result(f"{flag} {path}: malformed YAML: {err}")) from None
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise FunctionError(Result(f"{flag} {path}: must hold exactly one function config object"))
    return docs[0]


def main(registry: Registry, argv: Optional[list[str]] = None, prog: str = "krm-fn",
         extra_commands: Optional[dict[str, Callable[[list[str]], int]]] = None) -> int:
    """Command line: read stdin, write stdout, report on stderr, exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and extra_commands and argv[0] in extra_commands:
        return extra_commands[argv[0]](argv[1:])
    if argv[:1] in (["-h"], ["--help"]):
        sys.stdout.write(_usage(registry, prog))
        for name, command in (extra_commands or {}).items():
            sys.stdout.write(f"\n{prog} {name} --help: {(command.__doc__ or '').splitlines()[0]}\n")
        return 0
    if len(argv) == 2 and argv[1] in ("-h", "--help"):
        fn = registry.get(argv[0])
        if fn is None:
            sys.stderr.write(f"error: unknown function {argv[0]!r}; one of {', '.join(registry.kinds())}\n")
            return 2
        sys.stdout.write(fn.help_text())
        return 0
    config = None
    if argv[:1] == ["--config"] and len(argv) == 2:
        try:
            config = load_config_file(argv[1])
        except FunctionError as err:
            report(err.results, sys.stderr)
            return 1
    elif argv:
        sys.stderr.write(f"error: unexpected arguments {' '.join(argv)}\n{_usage(registry, prog)}")
        return 2
    try:
        output, results, ok = run(registry, sys.stdin.buffer.read(), config)
    except Exception as err:  # a bug, not bad input: still one line unless debugging
        if os.environ.get("KRMFN_DEBUG"):
            raise
        sys.stderr.write(f"error: internal error: {type(err).__name__}: {err} (set KRMFN_DEBUG=1 for a traceback)\n")
        sys.stdout.write(resourcelist.serialize(resourcelist.ResourceList([])))
        return 1
    sys.stdout.write(output)
    report(results, sys.stderr)
    return 0 if ok else 1


def _usage(registry: Registry, prog: str) -> str:
    kinds = "\n".join(f"  {k:<14} {registry.get(k).summary}" for k in registry.kinds())
    return (f"usage: {prog} < resource-list.yaml          run the function named by functionConfig\n"
            f"       {prog} --config fn.yaml < objs.yaml  run on a bare multi-document stream\n"
            f"       {prog} KIND --help                   the config schema and an example of KIND\n\n"
            f"functions ({registry.api_version}):\n{kinds}\n")

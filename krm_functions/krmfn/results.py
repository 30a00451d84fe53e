"""Results, as the KRM Functions Specification defines them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

ERROR, WARNING, INFO = "error", "warning", "info"


@dataclass(frozen=True)
class ResourceRef:
    apiVersion: str
    kind: str
    name: str
    namespace: Optional[str] = None

    def __str__(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind}/{ns}{self.name}"

    def to_dict(self) -> dict:
        out = {"apiVersion": self.apiVersion, "kind": self.kind, "name": self.name}
        if self.namespace:
            out["namespace"] = self.namespace
        return out


@dataclass(frozen=True)
class Field:
    path: str
    currentValue: Any = None
    proposedValue: Any = None

    def to_dict(self) -> dict:
        out: dict = {"path": self.path}
        if self.currentValue is not None:
            out["currentValue"] = self.currentValue
        if self.proposedValue is not None:
            out["proposedValue"] = self.proposedValue
        return out


@dataclass(frozen=True)
class Result:
    message: str
    severity: str = ERROR
    resourceRef: Optional[ResourceRef] = None
    field: Optional[Field] = None
    file: Optional[dict] = None  # {"path": ..., "index": ...}
    tags: dict = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        out: dict = {"message": self.message, "severity": self.severity}
        if self.resourceRef:
            out["resourceRef"] = self.resourceRef.to_dict()
        if self.field:
            out["field"] = self.field.to_dict()
        if self.file:
            out["file"] = dict(self.file)
        if self.tags:
            out["tags"] = dict(self.tags)
        return out

    def line(self) -> str:
        """One human-readable line: severity, resource, field, message."""
        where = " ".join(p for p in (
            str(self.resourceRef) if self.resourceRef else "",
            self.field.path if self.field else "",
        ) if p)
        return f"{self.severity}: {where}: {self.message}" if where else f"{self.severity}: {self.message}"


class FunctionError(Exception):
    """Raised by a function for bad input; carries one or more Results."""

    def __init__(self, *results: Result):
        super().__init__("; ".join(r.message for r in results))
        self.results = list(results)

    @classmethod
    def at(cls, obj: Any, path: str, message: str, **kw: Any) -> "FunctionError":
        ref = obj.ref if obj is not None and hasattr(obj, "ref") else None
        return cls(Result(message, ERROR, ref, Field(path, kw.get("current"), kw.get("proposed"))))

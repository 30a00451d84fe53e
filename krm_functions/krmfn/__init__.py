"""krmfn: a small SDK for KRM functions, in the style of kpt-functions-sdk's `fn`."""

from .kubeobject import KubeObject, PodTemplate
from .resourcelist import ResourceList, parse, serialize
from .results import ERROR, INFO, WARNING, Field, FunctionError, ResourceRef, Result
from .runner import Context, Function, Registry, main, run

__all__ = ["KubeObject", "PodTemplate", "ResourceList", "parse", "serialize", "ERROR", "INFO",
           "WARNING", "Field", "FunctionError", "ResourceRef", "Result", "Context", "Function",
           "Registry", "main", "run"]

"""YAML in and out, read the way kustomize (kyaml, YAML 1.2 core) reads it.

PyYAML implements YAML 1.1, where `on`, `yes`, `1:20` and `2024-01-01` are not
strings and `=` cannot be loaded at all. kustomize treats all of them as strings,
so the loader here resolves only the YAML 1.2 core schema (plus 0-prefixed octal
and `_` digit separators, which kyaml also accepts).

The dumper quotes every string that a YAML 1.1 *or* 1.2 reader could take for
something else, never emits anchors/aliases, and never folds long lines.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Iterator

import yaml

_CLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_CDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
LIBYAML = _CLoader is not yaml.SafeLoader

_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_INT = re.compile(
    r"""^(?:[-+]?0b[01_]+
        |[-+]?0o[0-7_]+
        |[-+]?0x[0-9a-fA-F_]+
        |[-+]?[0-9][0-9_]*)$""",
    re.X,
)
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
    re.X,
)


# Bounds on input: a ResourceList is kilobytes; aliases are how a few bytes become gigabytes.
MAX_INPUT_BYTES = 64 << 20
MAX_ALIASES = 100


class InputRefused(yaml.YAMLError):
    """Input this reader will not expand."""


class Loader(_CLoader):  # type: ignore[misc,valid-type]
    """Safe loader with kyaml's (YAML 1.2 core) implicit typing."""

    yaml_implicit_resolvers: dict = {}


class KrmLoader(Loader):
    """For KRM input: mapping keys are strings, as kyaml reads them (`1: x` has the key "1"),
    and a complex key is malformed."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        mapping = {}
        self.flatten_mapping(node)
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(None, None, "a mapping key must be a scalar",
                                                        key_node.start_mark)
            mapping[key_node.value] = self.construct_object(value_node, deep=deep)
        return mapping


def _int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    text = loader.construct_scalar(node).replace("_", "")
    sign = -1 if text.startswith("-") else 1
    text = text.lstrip("+-")
    if text.startswith("0o"):
        return sign * int(text[2:], 8)
    return sign * int(loader.construct_yaml_int(yaml.ScalarNode(node.tag, text)))


for _tag, _regexp, _first in (
    ("tag:yaml.org,2002:bool", _BOOL, "tTfF"),
    ("tag:yaml.org,2002:null", _NULL, ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:int", _INT, "-+0123456789"),
    ("tag:yaml.org,2002:float", _FLOAT, "-+.0123456789"),
):
    Loader.add_implicit_resolver(_tag, _regexp, list(_first))
Loader.add_constructor("tag:yaml.org,2002:int", _int)
KrmLoader.add_constructor("tag:yaml.org,2002:map", lambda loader, node: loader.construct_mapping(node))


class Dumper(_CDumper):  # type: ignore[misc,valid-type]
    """Safe dumper: block style, no aliases, strings quoted when ambiguous."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


# The base resolvers are YAML 1.1's; adding the 1.2 forms and y/n makes the
# dumper quote any string either family of readers would retype.
Dumper.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"), list("yYnN"))
Dumper.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
Dumper.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+.0123456789"))


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None  # falls back to quoted when block is impossible
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


Dumper.add_representer(str, _represent_str)


def _check_input(text: str | bytes) -> None:
    if len(text) > MAX_INPUT_BYTES:
        raise InputRefused(f"input of {len(text)} bytes is larger than {MAX_INPUT_BYTES}")
    if b"*" in text if isinstance(text, bytes) else "*" in text:  # aliases need a `*`
        aliases = sum(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=_CLoader))
        if aliases > MAX_ALIASES:
            raise InputRefused(f"{aliases} YAML aliases (at most {MAX_ALIASES}): refusing to expand them")


def load_all(text: str | bytes) -> list[Any]:
    """Every document of a stream; empty documents are dropped."""
    _check_input(text)
    return [doc for doc in yaml.load_all(text, Loader=Loader) if doc is not None]


def load_krm_all(text: str | bytes) -> list[Any]:
    """Every document of a stream of KRM input (a ResourceList, a function config): string keys."""
    _check_input(text)
    return [doc for doc in yaml.load_all(text, Loader=KrmLoader) if doc is not None]


def load(text: str | bytes) -> Any:
    _check_input(text)
    return yaml.load(text, Loader=Loader)


def dump(data: Any) -> str:
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=False, width=1 << 30)


def dump_all(docs: Iterable[Any]) -> str:
    return yaml.dump_all(list(docs), Dumper=Dumper, sort_keys=False, allow_unicode=True,
                         default_flow_style=False, width=1 << 30)


def iter_paths(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(path, leaf) pairs, for comparing documents in tests and error messages."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from iter_paths(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from iter_paths(value, f"{prefix}[{index}]")
    else:
        yield prefix, data

"""BaseConfig templates: jinja2 over variables derived from the ModelService.

StrictUndefined: a template naming a variable that does not exist is an error
that names it (and lists the ones that do).
"""

from __future__ import annotations

import re
from typing import Any

from ..krmfn import FunctionError, yamlio
from ..krmfn.results import ERROR, Field, Result


def sanitize(name: str) -> str:
    """A model name as a DNS label: meta-llama/Llama-3.1-8B -> meta-llama-llama-3-1-8b."""
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].rstrip("-")


def variables(name: str, namespace: str, spec: dict, model_path: str, mounted_model_path: str) -> dict:
    """What BaseConfig and ModelService templates may use."""
    routing = spec["routing"]
    ports = {p["name"]: p["port"] for p in routing.get("ports") or []}
    return {
        "model_service_name": name,
        "namespace": namespace,
        "model_name": routing["modelName"],
        "sanitized_model_name": sanitize(routing["modelName"]),
        "model_path": model_path,
        "mounted_model_path": mounted_model_path,
        "auth_secret_name": spec["modelArtifacts"]["authSecretName"],
        "prefill_deployment_name": f"{name}-prefill",
        "decode_deployment_name": f"{name}-decode",
        "prefill_service_name": f"{name}-prefill",
        "decode_service_name": f"{name}-decode",
        "inference_pool_name": f"{name}-pool",
        "epp_deployment_name": f"{name}-epp",
        "epp_service_name": f"{name}-epp",
        "epp_service_account_name": f"{name}-epp",
        "http_route_name": name,
        "gateway_refs": routing["gatewayRefs"],
        "ports": ports,
    }


def _environment():
    import jinja2  # only ModelService pays for the import

    return jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              autoescape=False)


def render(text: str, values: dict, where: Result) -> str:
    """Render one template; problems become errors at `where` (resource and field)."""
    import jinja2

    try:
        return _environment().from_string(text).render(**values)
    except jinja2.UndefinedError as err:
        known = ", ".join(sorted(values))
        raise FunctionError(Result(f"template uses an unknown variable: {err.message} (known: {known})",
                                   ERROR, where.resourceRef, where.field)) from None
    except jinja2.TemplateSyntaxError as err:
        raise FunctionError(Result(f"template syntax error at line {err.lineno}: {err.message}",
                                   ERROR, where.resourceRef, where.field)) from None


def render_yaml(text: str, values: dict, where: Result) -> Any:
    rendered = render(text, values, where)
    try:
        return yamlio.load(rendered)
    except Exception as err:  # malformed YAML after rendering
        raise FunctionError(Result(f"rendered template is not valid YAML: {err}", ERROR,
                                   where.resourceRef, where.field)) from None


def render_values(value: Any, values: dict, where: Result) -> Any:
    """Render every string inside a ModelService value (containers, env, args)."""
    if isinstance(value, str):
        return render(value, values, where) if ("{{" in value or "{%" in value) else value
    if isinstance(value, list):
        return [render_values(v, values, where) for v in value]
    if isinstance(value, dict):
        return {k: render_values(v, values, where) for k, v in value.items()}
    return value


def at(ref: Any, path: str) -> Result:
    """A placeholder Result carrying where a template came from."""
    return Result("", ERROR, ref, Field(path))

"""BaseConfig templates: jinja2 over variables derived from the ModelService.

Rendered in Jinja2's immutable sandbox with bounds on output, sizes, ranges and time.
StrictUndefined: a template naming a variable that does not exist is an error
that names it (and lists the ones that do).
"""

from __future__ import annotations

import contextlib
import re
import signal
import threading
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
        # LoRA adapters the pool serves besides the model (their names, as clients send them).
        "adapters": [a["name"] for a in spec["modelArtifacts"].get("adapters") or []],
    }


# Bounds on one template render: templates come from BaseConfigs and ModelServices that
# anyone may write, and run with the function's rights (as root on the host under
# `kpt fn eval --exec`).
MAX_OUTPUT = 1 << 20      # characters a template may produce
MAX_VALUE = 1 << 16       # characters or items `*` may build
MAX_RANGE = 10_000        # items range() may yield
MAX_SECONDS = 5.0         # wall time of one render


class TemplateLimit(Exception):
    """A template went past one of the bounds."""


def _environment():
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class BoundedEnvironment(ImmutableSandboxedEnvironment):
        """Jinja2's sandbox (no attribute escapes, no imports, nothing mutated) with bounds on
        what `*`, `**` and range() build."""

        intercepted_binops = frozenset(["*", "**"])

        def call_binop(self, context, operator, left, right):
            if operator == "**" and isinstance(right, (int, float)) and abs(right) > 64:
                raise TemplateLimit(f"exponent {right} is too large")
            if operator == "*":
                for value, count in ((left, right), (right, left)):
                    if isinstance(value, (str, list, tuple)) and isinstance(count, int) \
                            and len(value) * count > MAX_VALUE:
                        raise TemplateLimit(f"`*` would build {len(value) * count} characters or items "
                                            f"(at most {MAX_VALUE})")
            return super().call_binop(context, operator, left, right)

    environment = BoundedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                                     autoescape=False)

    def bounded_range(*args):
        items = range(*args)
        if len(items) > MAX_RANGE:
            raise TemplateLimit(f"range of {len(items)} items (at most {MAX_RANGE})")
        return items
    environment.globals["range"] = bounded_range
    return environment


@contextlib.contextmanager
def _deadline(seconds: float):
    """Interrupt a render that runs too long (in the main thread: the function's CLI)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise TemplateLimit(f"rendering took longer than {seconds:g} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _template_line(err: BaseException) -> str:
    """The template line an error was raised at, from its traceback."""
    line = ""
    tb = err.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = f" at line {tb.tb_lineno}"
        tb = tb.tb_next
    return line


def render(text: str, values: dict, where: Result) -> str:
    """Render one template in the bounded sandbox; problems become one error at `where`
    (resource and field), with the template line."""
    import jinja2
    from jinja2.sandbox import SecurityError

    def fail(message: str) -> FunctionError:
        return FunctionError(Result(message, ERROR, where.resourceRef, where.field))

    try:
        with _deadline(MAX_SECONDS):
            template = _environment().from_string(text)
            chunks, size = [], 0
            for chunk in template.generate(**values):
                size += len(chunk)
                if size > MAX_OUTPUT:
                    raise TemplateLimit(f"output longer than {MAX_OUTPUT} characters")
                chunks.append(chunk)
            return "".join(chunks)
    except jinja2.UndefinedError as err:
        known = ", ".join(sorted(values))
        raise fail(f"template uses an unknown variable{_template_line(err)}: {err.message} (known: {known})") from None
    except jinja2.TemplateSyntaxError as err:
        raise fail(f"template syntax error at line {err.lineno}: {err.message}") from None
    except SecurityError as err:
        raise fail(f"template not allowed{_template_line(err)}: {str(err)[:200]}") from None
    except TemplateLimit as err:
        raise fail(f"template stopped{_template_line(err)}: {err}") from None
    except (ArithmeticError, LookupError, TypeError, ValueError, RecursionError) as err:
        raise fail(f"template error{_template_line(err)}: {type(err).__name__}: {str(err)[:200]}") from None


def render_yaml(text: str, values: dict, where: Result) -> Any:
    rendered = render(text, values, where)
    try:
        return yamlio.load(rendered)
    except Exception as err:  # malformed YAML after rendering
        raise FunctionError(Result(f"rendered template is not valid YAML: {' '.join(str(err).split())[:200]}", ERROR,
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

"""ModelService templates render in a bounded sandbox: no escape to Python, and every
render ends quickly with a one-line error naming the template's field and line."""

import pytest

from krm_functions.krmfn import FunctionError
from krm_functions.model_service import templating

WHERE = templating.at(None, "data.decodeDeployment")


def _error(text: str) -> str:
    with pytest.raises(FunctionError) as err:
        templating.render(text, {"namespace": "ns"}, WHERE)
    [result] = err.value.results
    assert result.field.path == "data.decodeDeployment"
    return result.message


@pytest.mark.parametrize("text", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ namespace.__class__ }}",
    "{% set x = [] %}{{ x.append(1) }}",
])
def test_templates_cannot_reach_python(text):
    assert _error(text).startswith("template not allowed at line 1:")


@pytest.mark.parametrize("text,message", [
    ("{% for i in range(10**9) %}{% endfor %}", "range of 1000000000 items"),
    ("{{ 'a' * 10**9 }}", "`*` would build 1000000000"),
    ("{{ [0] * 10**9 }}", "`*` would build 1000000000"),
    ("{{ 2 ** 1000 }}", "exponent 1000 is too large"),
    ("{% for i in range(9000) %}{{ 'a' * 60000 }}{% endfor %}", "output longer than"),
])
def test_templates_are_bounded(text, message):
    assert message in _error(text)


def test_a_long_render_is_stopped(monkeypatch):
    monkeypatch.setattr(templating, "MAX_SECONDS", 0.2)
    text = "{% for i in range(9000) %}{% for j in range(9000) %}{% endfor %}{% endfor %}"
    assert _error(text) == "template stopped at line 1: rendering took longer than 0.2 s"


def test_runtime_errors_name_the_line():
    assert _error("a\nb\n{{ 1 // 0 }}") == "template error at line 3: ZeroDivisionError: integer division or modulo by zero"


def test_ordinary_templates_render():
    assert templating.render("{{ namespace }}-{{ [1, 2] | join(',') }}", {"namespace": "ns"}, WHERE) == "ns-1,2"

"""YAML 1.1 traps: values must keep their meaning through load/dump and through kustomize."""

import math

import pytest
import yaml

from krm_functions.krmfn import yamlio

TRAPS = ["on", "off", "yes", "no", "y", "n", "Y", "N", "true", "False", "0755", "010", "0o17", "0x1F",
         "1e3", "1_000", "1:20", ".inf", "-.inf", ".nan", "null", "Null", "NULL", "~", "", "=", "<<",
         "2024-01-01", "2001-12-14t21:59:43.10-05:00", "+12", "-0", "3.", ".5", "#not-a-comment", "- item",
         "key: value", "trailing space ", " leading", "x" * 5000, "line one\nline two\n", "a\n  b\n\n",
         "tab\tinside", "unicode ✓ ü", "'quoted'", '"double"']


@pytest.mark.parametrize("value", TRAPS, ids=lambda v: repr(v)[:30])
def test_string_round_trips_as_value_and_key(value):
    doc = {"data": {"v": value, value: "as-key"}, "list": [value]}
    text = yamlio.dump(doc)
    assert yamlio.load(text) == doc
    # A YAML 1.1 reader (PyYAML's own safe loader) must read the same strings too.
    if value not in ("<<",):
        assert yaml.safe_load(text) == doc


def test_native_values_read_like_kustomize():
    doc = yamlio.load("a: 0755\nb: 0o17\nc: 1e3\nd: on\ne: yes\nf: 1:20\ng: 1_000\nh: =\ni: 2024-01-01\n"
                      "j: true\nk: ~\nl: .inf\nm: 0x1F\n")
    assert doc == {"a": 493, "b": 15, "c": 1000.0, "d": "on", "e": "yes", "f": "1:20", "g": 1000, "h": "=",
                   "i": "2024-01-01", "j": True, "k": None, "l": math.inf, "m": 31}


def test_numbers_and_bools_round_trip():
    doc = {"i": 493, "f": 1000.0, "neg": -3, "b": True, "n": None, "big": 10**20, "inf": -math.inf}
    assert yamlio.load(yamlio.dump(doc)) == doc


def test_no_anchors_or_aliases():
    shared = {"a": [1, 2]}
    text = yamlio.dump({"x": shared, "y": shared})
    assert "&" not in text and "*" not in text


def test_long_lines_are_not_folded():
    long = " ".join(["word"] * 400)
    text = yamlio.dump({"v": long})
    assert len(text.splitlines()) == 1


def test_multiline_strings_use_block_style():
    assert "|" in yamlio.dump({"script": "set -e\necho hi\n"})


def test_libyaml_is_used_when_present():
    assert yamlio.LIBYAML == hasattr(yaml, "CSafeLoader")


def test_mapping_keys_are_strings_as_kyaml_reads_them():
    assert yamlio.load_krm_all("data: {1: a, true: b, on: c, 0755: d}") == [{"data": {"1": "a", "true": "b", "on": "c",
                                                                                    "0755": "d"}}]


def test_complex_keys_are_malformed():
    import yaml

    with pytest.raises(yaml.YAMLError, match="a mapping key must be a scalar"):
        yamlio.load_krm_all("? [a]\n: b\n")


def test_alias_bombs_and_oversized_input_are_refused(monkeypatch):
    levels = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{b}: &{b} [{', '.join(['*' + a] * 9)}]\n" for a, b in zip("abcdefghijklm", "bcdefghijklmn"))
    with pytest.raises(yamlio.InputRefused, match="YAML aliases"):
        yamlio.load(levels)
    assert yamlio.load("a: &x 1\nb: *x") == {"a": 1, "b": 1}  # a few aliases are ordinary YAML
    monkeypatch.setattr(yamlio, "MAX_INPUT_BYTES", 10)
    with pytest.raises(yamlio.InputRefused, match="larger than 10"):
        yamlio.load("a: 12345678901")

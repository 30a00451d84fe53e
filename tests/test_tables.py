"""The data tables are consistent with themselves: facts that refer to other facts
(an intent's metric, a machine count, a model's size) point at things that exist."""

import os
import re

import pytest

from krm_functions import tables
from krm_functions.model_source import build

SERVERS = tables.table("servers")


@pytest.mark.parametrize("name", list(SERVERS))
def test_every_autoscaling_intent_uses_a_metric_the_server_exports(name):
    row = SERVERS[name]
    exported = {m["name"] for m in row["exports"]}
    for intent, setting in row["intents"].items():
        assert setting["metric"] in exported, f"{name}: intent {intent} uses {setting['metric']}, not exported"


@pytest.mark.parametrize("row", tables.accelerators(), ids=lambda r: f"{r['provider']}/{r['name']}")
def test_accelerator_rows_are_complete(row):
    provider = tables.provider(row["provider"])
    assert row["type"] in ("gpu", "tpu")
    if row["type"] == "gpu":
        assert row["machines"] and all(isinstance(c, int) and c > 0 for c in row["machines"])
        if provider.get("gpuRequest") == "dra":  # a DeviceClass and a CEL selector on the GPU model
            assert provider["draDeviceClass"] and row["draSelector"].startswith("device.attributes[")
        else:
            assert provider["gpuResource"]
    else:
        for topology, setting in row["topologies"].items():
            chips = tables.topology_chips(topology)
            assert chips % setting["hosts"] == 0, f"{topology}: {chips} chips over {setting['hosts']} hosts"


@pytest.mark.parametrize("name", list(tables.table("models")))
def test_model_rows_are_complete(name):
    row = tables.model(name)
    assert row["dtype"] in tables.DTYPE_BYTES
    assert tables.weights_gib(row) > tables.checkpoint_bytes(row) / 2**30
    if row["dtype"] == "mxfp4":  # mixed precision: only the published size is exact
        assert row["checkpointGB"] > row["parametersB"] * tables.DTYPE_BYTES["mxfp4"]


@pytest.mark.parametrize("name", [n for n, r in SERVERS.items() if "modelBuild" in r])
def test_model_build_rows_name_a_script_and_say_what_they_build(name):
    row = SERVERS[name]["modelBuild"]
    assert os.path.isfile(os.path.join(build.BUILDS_DIR, row["script"])), row["script"]
    output = row["output"]  # a directory below the model's, on the weights volume
    assert output and not output.startswith("/") and ".." not in output.split("/") and row["summary"]
    assert set(row) <= {"script", "summary", "image", "output", "onServerAccelerator", "modelSection",
                        "serverEnv", "serverPath", "env", "diskFactor", "memoryFactor", "ephemeralStorage", "settings"}, row
    assert isinstance(row.get("diskFactor", 1), int) and row.get("diskFactor", 1) >= 1


@pytest.mark.parametrize("name", list(SERVERS))
def test_intent_labels_are_label_values(name):
    for intent, setting in SERVERS[name]["intents"].items():
        for key, value in (setting.get("labels") or {}).items():
            assert re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", key) and isinstance(value, str), (intent, key, value)

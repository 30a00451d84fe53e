"""The local control plane's stand-in for the clouds' file-storage CSI provisioners.

Watches claims of the storage classes catalog_tools/node_pools.py installs and, as an
external provisioner does, creates a PersistentVolume of the claim's size and access modes
for the class's driver, bound to the claim; deletes Released volumes of those classes. No
data is stored: KWOK's pods mount nothing.

    python -m catalog_tools.storage_provisioner    (started by catalog_tools/cluster.py)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from . import cluster
from .node_pools import DEFAULT_STORAGE_CLASS, STORAGE_CLASSES

DRIVERS = {**STORAGE_CLASSES, DEFAULT_STORAGE_CLASS[0]: DEFAULT_STORAGE_CLASS[1]}


def volume(claim: dict, driver: str) -> dict:
    meta, spec = claim["metadata"], claim["spec"]
    name = f"pvc-{meta['uid']}"
    return {"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": driver}},
            "spec": {"capacity": {"storage": spec["resources"]["requests"]["storage"]},
                     "accessModes": spec["accessModes"], "storageClassName": spec["storageClassName"],
                     "persistentVolumeReclaimPolicy": "Delete", "volumeMode": spec.get("volumeMode", "Filesystem"),
                     "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": meta["namespace"],
                                  "name": meta["name"], "uid": meta["uid"]},
                     "csi": {"driver": driver, "volumeHandle": name}}}


def once() -> None:
    claims = json.loads(cluster.kubectl("get", "pvc", "--all-namespaces", "-o", "json"))["items"]
    for claim in claims:
        cls = claim["spec"].get("storageClassName")
        if cls in DRIVERS and not claim["spec"].get("volumeName") and claim["status"].get("phase") == "Pending":
            cluster.kubectl("create", "-f", "-", stdin=json.dumps(volume(claim, DRIVERS[cls])), check=False)
    volumes = json.loads(cluster.kubectl("get", "pv", "-o", "json"))["items"]
    for pv in volumes:
        if pv["spec"].get("storageClassName") in DRIVERS and pv["status"].get("phase") == "Released":
            cluster.kubectl("delete", "pv", pv["metadata"]["name"], "--wait=false", check=False)


def main() -> int:
    while True:
        try:
            once()
        except (cluster.ClusterError, subprocess.SubprocessError, json.JSONDecodeError) as err:
            print(f"storage-provisioner: {err}", file=sys.stderr, flush=True)
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())

"""Model sources: the uris a ModelSource (or an llm-d ModelService) names, parsed and checked."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from .krmfn import FunctionError

SCHEMES = "hf://org/model, gs://bucket/path, pvc://claim/path or oci://image:tag"

# One pattern per scheme; the names of the groups are what the source needs.
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_PATTERNS = {
    # Hugging Face repository ids: org/name, letters, digits, '-', '_', '.'.
    "hf": re.compile(rf"^hf://(?P<repo>{_NAME}/{_NAME})/?$"),
    # GCS bucket names; the path may not hold ',' (it goes into gcsfuse's mount options).
    "gs": re.compile(r"^gs://(?P<bucket>[a-z0-9][a-z0-9._-]{1,220}[a-z0-9])(?:/(?P<path>[^,\s]*))?$"),
    # A claim name is a DNS subdomain.
    "pvc": re.compile(r"^pvc://(?P<claim>[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?)(?:/(?P<path>\S*))?$"),
    # An image reference: [registry[:port]/]repository[:tag][@digest].
    "oci": re.compile(r"^oci://(?P<ref>(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?"
                      r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
                      r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?P<digest>@sha256:[a-f0-9]{64})?)$"),
}
_FORMS = {"hf": "hf://org/model", "gs": "gs://bucket/path", "pvc": "pvc://claim/path", "oci": "oci://image:tag"}


@dataclass
class Source:
    """A parsed uri."""

    scheme: str
    uri: str
    repo: str = ""  # hf
    bucket: str = ""  # gs
    claim: str = ""  # pvc
    path: str = ""  # gs, pvc: inside the bucket or claim, no leading/trailing '/'
    reference: str = ""  # oci

    @property
    def default_served_name(self) -> str:
        """The name clients use when no model name is known: the last part of the uri."""
        if self.scheme == "hf":
            return self.repo
        if self.scheme == "oci":  # the repository's last part, without tag or digest
            return self.reference.split("@")[0].rsplit("/", 1)[-1].split(":")[0]
        return (self.path.rsplit("/", 1)[-1] if self.path else "") or self.bucket or self.claim


def parse_uri(uri: str) -> Source:
    scheme, sep, _ = uri.partition("://")
    if not sep:
        raise FunctionError.at(None, "spec.uri", f"{uri!r} has no scheme: expected {SCHEMES}", current=uri)
    if scheme not in _PATTERNS:
        raise FunctionError.at(None, "spec.uri", f"unknown scheme {scheme + '://'!r}: expected {SCHEMES}", current=uri)
    match = _PATTERNS[scheme].match(uri)
    if match is None:
        raise FunctionError.at(None, "spec.uri", f"malformed {scheme}:// uri {uri!r}: expected {_FORMS[scheme]}",
                               current=uri)
    parts = {k: v for k, v in match.groupdict().items() if v is not None and k not in ("tag", "digest")}
    if "path" in parts:
        parts["path"] = parts["path"].strip("/")
        if ".." in parts["path"].split("/"):
            raise FunctionError.at(None, "spec.uri", f"{uri!r}: the path may not contain '..'", current=uri)
    source = Source(scheme, uri, **{("reference" if k == "ref" else k): v for k, v in parts.items()})
    if scheme == "oci":
        _check_pinned(source, match.group("tag"), match.group("digest"))
    return source


def _check_pinned(source: Source, tag: Optional[str], digest: Optional[str]) -> None:
    if digest:
        return  # a digest pins the image
    if not tag or tag == "latest":
        what = "has no tag" if not tag else "uses the :latest tag"
        raise FunctionError.at(None, "spec.uri", f"{source.uri!r} {what}: pin a version tag or a digest "
                               f"(each node pulls the image once; a moving tag serves different weights "
                               f"on different nodes)", current=source.uri)

#!/usr/bin/env python3
"""Trim a Google discovery document to the part ccd uses.

Usage: trim.py [SOURCE] [DEST] [RESOURCE[:METHOD,...] ...]
  SOURCE defaults to ../shared/reference/discovery-compute.v1.json relative to
  the repository root; DEST defaults to data/compute-v1.json beside this tool.
  DEST "-" writes to stdout (the crate's test compares that with the
  embedded copy). RESOURCE is a dotted path to a (possibly nested) resource,
  e.g. "projects.databases"; ":get,create" keeps only those methods. Without
  any, the Compute Engine resources below are kept, each whole.

Keeps the listed resources with their methods, the schemas they reach
transitively, and only the fields that describe the wire contract; every
description and other prose is dropped. Output is deterministic: sorted keys,
no insignificant whitespace, ASCII only, one trailing newline.
"""

import json
import os
import sys

RESOURCES = [
    "instanceTemplates", "regionInstanceTemplates",
    "instanceGroupManagers", "regionInstanceGroupManagers",
    "instanceGroups", "regionInstanceGroups",
    "instances",
    "healthChecks", "regionHealthChecks",
    "backendServices", "regionBackendServices",
    "urlMaps", "regionUrlMaps",
    "targetHttpProxies", "targetHttpsProxies",
    "regionTargetHttpProxies", "regionTargetHttpsProxies",
    "sslCertificates", "regionSslCertificates",
    "forwardingRules", "globalForwardingRules",
    "addresses", "globalAddresses",
    "firewalls", "networks", "subnetworks",
    "zoneOperations", "regionOperations", "globalOperations",
    "zones", "regions",
    "autoscalers", "regionAutoscalers",
]

TOP_LEVEL = ["name", "version", "revision", "rootUrl", "servicePath"]
METHOD_KEYS = ["httpMethod", "flatPath", "path", "id", "parameterOrder"]
# Parameter facts a server needs to parse and validate a query string.
PARAM_KEYS = ["location", "type", "required", "enum", "format", "repeated",
              "default", "minimum", "maximum"]
# Schema facts a body checker needs. `annotations` carries the discovery
# form of "required" (the method ids for which a field is required).
SCHEMA_KEYS = ["id", "type", "format", "enum", "$ref", "readOnly", "required",
               "annotations"]


def trim_param(param):
    return {k: param[k] for k in PARAM_KEYS if k in param}


def trim_schema(schema, refs):
    """Copies the structural keys of a schema node, recording every $ref.

    Only keys known to be structural are copied, so a property that happens to
    be *named* "description" survives while description texts do not."""
    out = {k: schema[k] for k in SCHEMA_KEYS if k in schema}
    if "$ref" in schema:
        refs.append(schema["$ref"])
    if "properties" in schema:
        out["properties"] = {
            name: trim_schema(prop, refs)
            for name, prop in schema["properties"].items()
        }
    for key in ("items", "additionalProperties"):
        if key in schema:
            out[key] = trim_schema(schema[key], refs)
    return out


def trim_method(method, refs):
    out = {k: method[k] for k in METHOD_KEYS if k in method}
    out["parameters"] = {
        name: trim_param(p) for name, p in method.get("parameters", {}).items()
    }
    for key in ("request", "response"):
        if key in method:
            out[key] = {"$ref": method[key]["$ref"]}
            refs.append(method[key]["$ref"])
    return out


def keep(doc, out, spec, refs):
    """Copies one resource (`a.b` nested as resources.a.resources.b) into
    `out`, with all its methods or the listed ones."""
    path, _, names = spec.partition(":")
    src, dst = doc, out
    for part in path.split("."):
        src = src["resources"][part]
        dst = dst.setdefault("resources", {}).setdefault(part, {})
    methods = src["methods"]
    wanted = names.split(",") if names else sorted(methods)
    dst["methods"] = {m: trim_method(methods[m], refs) for m in wanted}


def trim(doc, specs=None):
    out = {k: doc[k] for k in TOP_LEVEL}
    out["parameters"] = {
        name: trim_param(p) for name, p in doc["parameters"].items()
    }
    refs = []
    kept = {}
    for spec in specs or RESOURCES:
        keep(doc, kept, spec, refs)
    out["resources"] = kept["resources"]

    schemas = {}
    while refs:
        name = refs.pop()
        if name in schemas:
            continue
        schemas[name] = trim_schema(doc["schemas"][name], refs)
    out["schemas"] = schemas
    return out


def render(doc, specs=None):
    return json.dumps(trim(doc, specs), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True) + "\n"


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    repo_root = os.path.join(here, "..", "..", "..")
    src = argv[1] if len(argv) > 1 else os.path.join(
        repo_root, "..", "shared", "reference", "discovery-compute.v1.json")
    dest = argv[2] if len(argv) > 2 else os.path.join(
        here, "..", "data", "compute-v1.json")
    with open(src, encoding="utf-8") as f:
        text = render(json.load(f), argv[3:])
    if dest == "-":
        sys.stdout.write(text)
    else:
        with open(dest, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

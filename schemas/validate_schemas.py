#!/usr/bin/env python3
"""Check mbdata sample schemas and the `mbdata serve` OpenAPI document.

Validates each sample schema against sample-schema.schema.json (JSON Schema
2020-12), then applies the rules JSON Schema cannot express: unique field
names, and a `key` that names a scalar field of an integer dtype, `string` or
`bytes`.

Validates serve-openapi.yaml as OpenAPI 3.1 (openapi-spec-validator), checks
its examples against their schemas, and checks that it has exactly the routes
serve-protocol.md names (`GET /v1/...` in backticks).

    python schemas/validate_schemas.py              # every *.schema.json in schemas/ and samples/, and serve-openapi.yaml
    python schemas/validate_schemas.py FILE...      # just these (*.yaml / *.yml are OpenAPI documents)
    python schemas/validate_schemas.py --self-test  # also check that bad schemas and documents are rejected

Needs the packages in schemas/requirements.txt (jsonschema, openapi-spec-validator, pyyaml).
"""

import copy
import json
import re
import sys
from pathlib import Path

from jsonschema import Draft202012Validator

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
META = HERE / "sample-schema.schema.json"
OPENAPI = HERE / "serve-openapi.yaml"
PROTOCOL = HERE / "serve-protocol.md"
# Python's `$` also matches before a final newline; JSON Schema (ECMA-262) regexes do not.
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
KEY_DTYPES = {"uint8", "int8", "int16", "int32", "int64", "string", "bytes"}


def problems(doc, validator):
    """Every reason `doc` is not a valid sample schema (empty when it is)."""
    out = [
        f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]
    if out:
        return out
    fields = doc["fields"]
    seen = set()
    for i, f in enumerate(fields):
        if not NAME.fullmatch(f["name"]):
            out.append(f"fields/{i}/name: {f['name']!r} is not a valid field name")
        if f["name"] in seen:
            out.append(f"fields/{i}/name: duplicate field name {f['name']!r}")
        seen.add(f["name"])
    if "key" in doc:
        named = [f for f in fields if f["name"] == doc["key"]]
        if not named:
            out.append(f"key: {doc['key']!r} names no field")
        else:
            f = named[0]
            if f["dtype"] not in KEY_DTYPES or f.get("shape", []):
                out.append(
                    f"key: field {f['name']!r} must be a scalar of an integer dtype, "
                    f"string or bytes (is {f['dtype']} shape {f.get('shape', [])})"
                )
    return out


ROUTE = re.compile(r"`(GET|PUT|POST|DELETE|PATCH|HEAD) (/[^`?\s]*)")
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def openapi_problems(doc, protocol_text=None):
    """Every reason `doc` is not a valid serve OpenAPI document (empty when it is)."""
    try:
        from openapi_spec_validator import OpenAPIV31SpecValidator
        from referencing import Registry, Resource
        from referencing.exceptions import Unresolvable
        from referencing.jsonschema import DRAFT202012
    except ImportError as error:
        return [f"cannot check OpenAPI documents: {error} (pip install -r schemas/requirements.txt)"]
    if not isinstance(doc, dict):
        return ["(top): not a mapping"]
    if not str(doc.get("openapi", "")).startswith("3.1."):
        return [f"openapi: expected a 3.1.x document, got {doc.get('openapi')!r}"]
    try:
        out = [
            f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
            for e in OpenAPIV31SpecValidator(doc).iter_errors()
        ]
    except Unresolvable as error:  # the validator raises on a $ref to nowhere
        out = [f"unresolvable reference {error.ref!r}"]
    if out:
        return out

    # Examples against their schemas; `#/components/...` references resolve in `doc`.
    base = "urn:mbdata:serve-openapi"
    registry = Registry().with_resource(base, Resource.from_contents(doc, default_specification=DRAFT202012))

    def pointer(parts):
        return "#/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)

    def check(value, at, where):
        validator = Draft202012Validator({"$ref": base + pointer(at)}, registry=registry)
        for e in validator.iter_errors(value):
            out.append(f"{where}: example does not match its schema: {e.message}")

    def walk(node, at):
        if isinstance(node, dict):
            if "schema" in node and isinstance(node["schema"], dict):
                if "example" in node:
                    check(node["example"], at + ["schema"], pointer(at + ["example"]))
                for name, example in (node.get("examples") or {}).items():
                    if isinstance(example, dict) and "value" in example:
                        check(example["value"], at + ["schema"], pointer(at + ["examples", name]))
            if at[-2:-1] == ["schemas"] and "example" in node:
                check(node["example"], at, pointer(at + ["example"]))
            for key, value in node.items():
                walk(value, at + [key])
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, at + [index])

    walk(doc, [])

    # The routes the prose names and the document's, both ways.
    if protocol_text is not None:
        prose = {(m.lower(), p) for m, p in ROUTE.findall(protocol_text)}
        described = {(m, p) for p, item in doc.get("paths", {}).items() for m in item if m in METHODS}
        for method, path in sorted(prose - described):
            out.append(f"paths: {method.upper()} {path} is in {PROTOCOL.name} but not here")
        for method, path in sorted(described - prose):
            out.append(f"paths: {method.upper()} {path} is here but not in {PROTOCOL.name}")
    return out


def load_openapi(path):
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8"))


BAD_OPENAPI = {
    "OpenAPI 3.0": lambda d: d.update(openapi="3.0.3"),
    "no info": lambda d: d.pop("info"),
    "dangling $ref": lambda d: d["paths"]["/healthz"]["get"]["responses"].update(
        {"418": {"$ref": "#/components/responses/Teapot"}}
    ),
    "path parameter not declared": lambda d: d["paths"].update(
        {"/v1/things/{thing}": {"get": {"responses": {"200": {"description": "ok"}}}}}
    ),
    "example against its schema": lambda d: d["components"]["schemas"]["Error"].update(example={"error": {"code": 1}}),
    "route missing from the prose": lambda d: d["paths"].update(
        {"/v1/extra": {"get": {"responses": {"200": {"description": "ok"}}}}}
    ),
    "route of the prose missing": lambda d: d["paths"].pop("/metrics"),
}


BAD = {
    "no name": {"fields": [{"name": "a", "dtype": "int64"}]},
    "empty fields": {"name": "x", "fields": []},
    "unknown top-level property": {"name": "x", "version": 1, "fields": [{"name": "a", "dtype": "int64"}]},
    "unknown field property": {"name": "x", "fields": [{"name": "a", "dtype": "int64", "nullable": True}]},
    "unknown dtype": {"name": "x", "fields": [{"name": "a", "dtype": "uint16"}]},
    "leading underscore": {"name": "x", "fields": [{"name": "_a", "dtype": "int64"}]},
    "leading digit": {"name": "x", "fields": [{"name": "1a", "dtype": "int64"}]},
    "trailing newline in name": {"name": "x", "fields": [{"name": "a\n", "dtype": "int64"}]},
    "name too long": {"name": "x", "fields": [{"name": "a" * 65, "dtype": "int64"}]},
    "zero dimension": {"name": "x", "fields": [{"name": "a", "dtype": "int64", "shape": [0]}]},
    "negative dimension": {"name": "x", "fields": [{"name": "a", "dtype": "int64", "shape": [-1]}]},
    "string dimension": {"name": "x", "fields": [{"name": "a", "dtype": "int64", "shape": ["n"]}]},
    "string tensor": {"name": "x", "fields": [{"name": "a", "dtype": "string", "shape": [2]}]},
    "bytes tensor": {"name": "x", "fields": [{"name": "a", "dtype": "bytes", "shape": [None]}]},
    "duplicate field": {"name": "x", "fields": [{"name": "a", "dtype": "int64"}, {"name": "a", "dtype": "int32"}]},
    "key names no field": {"name": "x", "key": "b", "fields": [{"name": "a", "dtype": "int64"}]},
    "float key": {"name": "x", "key": "a", "fields": [{"name": "a", "dtype": "float32"}]},
    "bool key": {"name": "x", "key": "a", "fields": [{"name": "a", "dtype": "bool"}]},
    "tensor key": {"name": "x", "key": "a", "fields": [{"name": "a", "dtype": "int64", "shape": [2]}]},
}
GOOD = {
    "minimal": {"name": "x", "fields": [{"name": "a", "dtype": "bool"}]},
    "empty shape is scalar": {"name": "x", "key": "a", "fields": [{"name": "a", "dtype": "int64", "shape": []}]},
    "string scalar with empty shape": {"name": "x", "fields": [{"name": "s", "dtype": "string", "shape": []}]},
    "bytes key": {"name": "x", "key": "b", "fields": [{"name": "b", "dtype": "bytes"}]},
    "64-char name": {"name": "x", "fields": [{"name": "A" + "_" * 63, "dtype": "int8"}]},
    "variable dims": {"name": "x", "fields": [{"name": "t", "dtype": "bfloat16", "shape": [None, 3, None]}]},
}


def main(argv):
    meta = json.loads(META.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(meta)
    validator = Draft202012Validator(meta)
    self_test = "--self-test" in argv
    paths = [Path(a) for a in argv if a != "--self-test"]
    if not paths:
        paths = sorted(p for d in (HERE, REPO / "samples") for p in d.rglob("*.schema.json") if p != META)
        paths.append(OPENAPI)
    protocol_text = PROTOCOL.read_text(encoding="utf-8")
    failed = False
    for p in paths:
        if p.suffix in (".yaml", ".yml"):
            try:
                errs = openapi_problems(load_openapi(p), protocol_text if p.resolve() == OPENAPI else None)
            except ImportError as error:
                errs = [f"cannot read YAML: {error} (pip install -r schemas/requirements.txt)"]
        else:
            errs = problems(json.loads(p.read_text(encoding="utf-8")), validator)
        shown = p.resolve().relative_to(REPO) if p.resolve().is_relative_to(REPO) else p
        print(f"{'ok  ' if not errs else 'FAIL'} {shown}")
        for e in errs:
            print(f"     {e}")
        failed |= bool(errs)
    if self_test:
        for what, doc in BAD.items():
            if not problems(doc, validator):
                print(f"FAIL self-test: accepted bad schema ({what})")
                failed = True
        for what, doc in GOOD.items():
            errs = problems(doc, validator)
            if errs:
                print(f"FAIL self-test: rejected good schema ({what}): {errs}")
                failed = True
        if not failed:
            print(f"ok   self-test: {len(BAD)} bad schemas rejected, {len(GOOD)} good ones accepted")
        good_openapi = load_openapi(OPENAPI)
        openapi_failed = False
        for what, spoil in BAD_OPENAPI.items():
            doc = copy.deepcopy(good_openapi)
            spoil(doc)
            if not openapi_problems(doc, protocol_text):
                print(f"FAIL self-test: accepted bad OpenAPI document ({what})")
                openapi_failed = True
        if not openapi_failed:
            print(f"ok   self-test: {len(BAD_OPENAPI)} bad OpenAPI documents rejected")
        failed |= openapi_failed
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

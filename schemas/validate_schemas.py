#!/usr/bin/env python3
"""Check mbdata sample schemas.

Validates each file against sample-schema.schema.json (JSON Schema 2020-12),
then applies the rules JSON Schema cannot express: unique field names, and a
`key` that names a scalar field of an integer dtype, `string` or `bytes`.

    python schemas/validate_schemas.py              # every *.schema.json in schemas/ and samples/
    python schemas/validate_schemas.py FILE...      # just these
    python schemas/validate_schemas.py --self-test  # also check that bad schemas are rejected

Needs the `jsonschema` package.
"""

import json
import re
import sys
from pathlib import Path

from jsonschema import Draft202012Validator

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
META = HERE / "sample-schema.schema.json"
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
    failed = False
    for p in paths:
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
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

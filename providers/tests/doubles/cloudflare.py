#!/usr/bin/env python3
"""A strict test double of Cloudflare's DNS API (v4), for rotor's Cloudflare adapter tests.

Usage:
    python3 cloudflare.py --port PORT --schema PATH --token TOKEN --zone example.com [--zone ...]
                          [--mirror IP:PORT --mirror-key TSIG_FILE]

It binds 127.0.0.1:PORT, serves HTTP/1.1 under /client/v4, prints `ready` once listening and exits
cleanly on SIGTERM/SIGINT. Each --zone is an active zone whose id is md5(name). With --mirror, every
change of TXT records is pushed (nsupdate, TSIG) to that DNS server, which plays Cloudflare's
nameservers, so end-to-end tests can check propagation through real DNS.

The contract is Cloudflare's own OpenAPI 3.0 schema (the trimmed copy in shared/cloudflare, see
SOURCE.md there). Every API request is validated against it: path and query parameters (query
strings are coerced to the parameter's schema type first) and JSON bodies. A request that does not
validate gets 400, code 9999, a message naming the schema error, and the message is recorded in
/__violations. Every response the double builds is validated too: a failure is a bug of the double
and becomes a 500 that is also recorded. OpenAPI 3.0 specifics are converted to Draft 4 JSON Schema
(`nullable` becomes a "null" type, `example`, `readOnly`, `x-*` and the like are dropped) and
`$ref`s are resolved against the whole document.

Served: GET /user/tokens/verify; GET /zones (?name=, page, per_page); GET /zones/{id};
GET|POST /zones/{id}/dns_records (filters type, name|name.exact, content|content.exact, comment*,
proxied, match, order, direction, page, per_page); GET|PUT|PATCH|DELETE
/zones/{id}/dns_records/{record}; POST /zones/{id}/dns_records/batch (Cloudflare-documented, not
in the schema: deletes, patches, puts, posts, in that order, all-or-nothing, at most 200 operations).

Behaviour modelled on the real API:
  * Authorization: Bearer TOKEN is required: missing -> 401, wrong -> 403, code 10000.
  * Unknown zone -> 404 code 7003; unknown record -> 404 code 81044; unknown path -> 404 code 7000.
  * TXT content is either one plain string or double-quoted strings separated by spaces. A quoted
    string may hold at most 255 bytes and content at most 2048 characters (else 400, code 9004).
    Plain content longer than 255 bytes is stored, and read back, as quoted 255-byte strings
    ("aaa..." "bbb..."), so clients must decode content before comparing it.
  * A record identical to another one (name, type and data) -> 400 code 81058.
  * Names are FQDNs, stored lowercase without the trailing dot ("@" is the apex); a name outside
    its zone -> 400 code 1004. Comments longer than 100 characters (free plan) -> 400 code 1004.

Deliberate deviations and choices (stricter than the real API where it helps find client bugs):
  * Unknown query parameters are schema violations (the schema does not forbid them, the real API
    ignores them, but a misspelt `per-page` should fail a test). `name.exact` and `content.exact`,
    documented by Cloudflare but absent from the trimmed schema, are accepted.
  * Relative record names are rejected instead of having the zone appended.
  * The `content` filter is an exact match on the stored (possibly re-quoted) content.
  * Records have no `comment` key when they have none (the real API sends null, which the schema's
    `comment: {type: string}` does not allow).
  * Error responses are validated against the family's `*_api-response-common-failure` schema: the
    schema's dns-records and iam 4XX schemas are allOf(success-envelope, failure-envelope), which no
    document can satisfy (`success` must be both true and false).
  * Failures injected through /__control are sent as given and not validated: Cloudflare's real rate
    limit code 971 is below the schema's `minimum: 1000` for error codes.
  * `delay_ms` delays a request before it is processed: a request whose client gave up on it is
    still applied, as can happen with the real API.
  * PATCH bodies and batch `patches` must carry `type`, `name` and `content`: the schema gives PATCH
    the same request schema as POST and PUT (a oneOf over record types, selected by `type`).
  * The filters `tag*` and `search` are not implemented: 400, code 1004, saying so.

Control endpoints (no auth, not counted in /__calls):
  POST /__control {"fail_next": [{"status": 429, "retry_after": 2, "code": 971, "message": "..."}, ...],
                   "delay_ms": 0, "reset": false}
      fail_next replaces the queue of failures served to the next API requests, one each, in order
      (Retry-After header when retry_after is given); delay_ms delays every API request; reset
      first clears records, calls, violations, failures and delay. Omitted keys keep their value.
  GET /__calls       {"total": N, "by_route": {"GET /zones/{zone_id}/dns_records": n, ...}}
  GET /__violations  the schema-violation messages seen so far (requests, and the double's own responses)
  GET /__records[?zone=NAME|ID]  the stored records (full objects), of one zone or of all
  POST /__records {"zone": "example.com", "name": ..., "type": "TXT", "content": ..., "comment": ...}
      plants a record directly (no duplicate check), as if created outside rotor
"""

import argparse
import collections
import datetime
import hashlib
import json
import math
import re
import signal
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import jsonschema

API_PREFIX = "/client/v4"

# Error codes, as Cloudflare uses them (or close to it where Cloudflare's own is undocumented).
ERR_AUTH = 10000          # Authentication error
ERR_NO_ROUTE = 7000       # No route for that URI
ERR_METHOD = 7001         # Method not allowed
ERR_BAD_ID = 7003         # Could not route to ..., perhaps your object identifier is invalid?
ERR_VALIDATION = 1004     # DNS Validation Error (name outside zone, comment, TTL, batch size)
ERR_CONTENT = 9004        # invalid record content (TXT strings, proxied TXT)
ERR_SCHEMA = 9999         # request does not validate against the OpenAPI schema
ERR_NOT_FOUND = 81044     # Record does not exist.
ERR_DUPLICATE = 81058     # An identical record already exists.
ERR_RATE_LIMIT = 971      # Please wait and consider throttling your request speed

MAX_TXT_STRING_BYTES = 255
MAX_CONTENT_CHARS = 2048
MAX_COMMENT_CHARS = 100
MAX_BATCH_OPERATIONS = 200
BATCH_KEYS = ("deletes", "patches", "puts", "posts")

# (template, {method: handler name}, schema family). Literal segments come before parameters.
ROUTES = [
    ("/user/tokens/verify", {"GET": "verify_token"}, "iam"),
    ("/zones", {"GET": "list_zones"}, "zones"),
    ("/zones/{zone_id}", {"GET": "get_zone"}, "zones"),
    ("/zones/{zone_id}/dns_records", {"GET": "list_records", "POST": "create_record"}, "dns-records"),
    ("/zones/{zone_id}/dns_records/batch", {"POST": "batch"}, "dns-records"),
    ("/zones/{zone_id}/dns_records/{dns_record_id}",
     {"GET": "get_record", "PUT": "put_record", "PATCH": "patch_record", "DELETE": "delete_record"},
     "dns-records"),
]

REF = "#/components/schemas/"
RECORD_REQUEST = {"$ref": REF + "dns-records_dns-record-request"}
ID_REQUIRED = {"type": "object", "required": ["id"], "properties": {"id": {"$ref": REF + "dns-records_identifier"}}}
# The batch endpoint is not in the schema: its body and response, from Cloudflare's documentation.
BATCH_REQUEST = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "deletes": {"type": "array", "items": ID_REQUIRED},
        "patches": {"type": "array", "items": {"allOf": [RECORD_REQUEST, ID_REQUIRED]}},
        "puts": {"type": "array", "items": {"allOf": [RECORD_REQUEST, ID_REQUIRED]}},
        "posts": {"type": "array", "items": RECORD_REQUEST},
    },
}
BATCH_RESPONSE = {"allOf": [{"$ref": REF + "dns-records_api-response-common"}, {
    "type": "object", "required": ["result"],
    "properties": {"result": {"type": "object", "required": list(BATCH_KEYS), "properties": {
        key: {"type": "array", "items": {"$ref": REF + "dns-records_dns-record"}} for key in BATCH_KEYS}}}}]}
# Query parameters Cloudflare documents that the trimmed schema lacks.
EXTRA_LIST_PARAMS = {"name.exact": {"$ref": REF + "dns-records_name"}, "content.exact": {"type": "string"}}


class ApiError(Exception):
    """An API failure, sent as Cloudflare's error envelope. `violation`: record it too."""

    def __init__(self, status, code, message, violation=False):
        super().__init__(message)
        self.status, self.code, self.message, self.violation = status, code, message, violation


def failure(code, message):
    return {"success": False, "errors": [{"code": code, "message": message}], "messages": [], "result": None}


def success(result, result_info=None, messages=()):
    body = {"success": True, "errors": [], "messages": list(messages), "result": result}
    if result_info is not None:
        body["result_info"] = result_info
    return body


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---------------------------------------------------------------------------------------------
# OpenAPI 3.0 -> JSON Schema Draft 4
# ---------------------------------------------------------------------------------------------

SUBSCHEMA_MAPS = ("properties", "patternProperties", "definitions")
SUBSCHEMA_ONE = ("items", "additionalProperties", "not")
SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
ANNOTATIONS = ("example", "examples", "readOnly", "writeOnly", "nullable", "discriminator", "xml",
               "externalDocs", "deprecated")


def to_json_schema(node):
    """Convert one OpenAPI 3.0 schema object (recursively) to Draft 4 JSON Schema."""
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ANNOTATIONS or key.startswith("x-"):
            continue
        if key in SUBSCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in SUBSCHEMA_ONE and isinstance(value, dict):
            out[key] = to_json_schema(value)
        elif key in SUBSCHEMA_LISTS:
            out[key] = [to_json_schema(sub) for sub in value]
        else:
            out[key] = value
    if node.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
            if "enum" in out and None not in out["enum"]:
                out["enum"] = out["enum"] + [None]
        else:
            out = {"anyOf": [{"type": "null"}, out]}
    return out


def explain(error):
    """One readable line for a validation error; oneOf over record types names the right branch."""
    if error.validator == "oneOf" and error.context and isinstance(error.instance, dict):
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        if "type" not in error.instance:
            return f"{where}: 'type' is a required property (it selects the record schema)"
        branches = collections.defaultdict(list)
        for sub in error.context:
            branches[sub.schema_path[0]].append(sub)
        # The branch whose `type` enum accepted the record is the one the client meant.
        fitting = [errs for errs in branches.values() if not any(list(e.relative_path)[:1] == ["type"] for e in errs)]
        if len(fitting) == 1:
            return explain(fitting[0][0])
        if not fitting:
            return f"{where}: {error.instance['type']!r} is not a record type the schema knows"
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    message = error.message if len(error.message) <= 300 else error.message[:300] + "..."
    return f"{where}: {message}"


class Contract:
    """The OpenAPI document, and cached Draft 4 validators for the schemas in it."""

    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            self.doc = json.load(f)
        self.components = {"schemas": {name: to_json_schema(s) for name, s in self.doc["components"]["schemas"].items()}}
        self._validators = {}
        self._lock = threading.Lock()

    def operation(self, template, method):
        return self.doc["paths"].get(template, {}).get(method.lower())

    def resolve(self, node):
        """Follow `$ref`s in the raw document."""
        while isinstance(node, dict) and "$ref" in node:
            target = self.doc
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    def check(self, key, schema, instance):
        """None if `instance` validates against `schema` (cached under `key`), else the error."""
        with self._lock:
            validator = self._validators.get(key)
            if validator is None:
                root = dict(to_json_schema(schema), components=self.components)  # so $refs resolve
                validator = jsonschema.Draft4Validator(root, format_checker=jsonschema.FormatChecker())
                self._validators[key] = validator
        errors = list(validator.iter_errors(instance))
        if not errors:
            return None
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return explain(errors[0]) + more

    def params_schema(self, op, location, extra=None):
        """An object schema for an operation's parameters in `location` ("path" or "query")."""
        props, required = {}, []
        for param in (op or {}).get("parameters", []):
            param = self.resolve(param)
            if param["in"] == location:
                props[param["name"]] = param.get("schema", {})
                if param.get("required"):
                    required.append(param["name"])
        props.update(extra or {})
        schema = {"type": "object", "properties": props, "additionalProperties": False}
        if required:
            schema["required"] = required
        return schema

    def coerce(self, value, schema):
        """A query-string value as the JSON type its parameter schema declares."""
        kind = self.resolve(schema).get("type")
        if kind in ("number", "integer") and re.fullmatch(r"-?\d+", value):
            return int(value)
        if kind == "number" and re.fullmatch(r"-?\d+\.\d*(e-?\d+)?", value):
            return float(value)
        if kind == "boolean" and value in ("true", "false"):
            return value == "true"
        return value  # left a string, so that the schema names the mismatch


# ---------------------------------------------------------------------------------------------
# Records: names and TXT content
# ---------------------------------------------------------------------------------------------

QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"\s*', re.S)


def txt_strings(content):
    """The character-strings of TXT `content`, as sent (escapes kept); raises on bad content."""
    if len(content) > MAX_CONTENT_CHARS:
        raise ApiError(400, ERR_CONTENT, f"TXT content is {len(content)} characters long, more than {MAX_CONTENT_CHARS}.")
    if not content.startswith('"'):
        return None  # plain content: one value
    strings, pos = [], 0
    while pos < len(content):
        match = QUOTED.match(content, pos)
        if not match:
            raise ApiError(400, ERR_CONTENT, f"Malformed quoted TXT content at character {pos}: quoted strings must be "
                                             'closed and separated by spaces, as in "abc" "def".')
        size = len(re.sub(r"\\(\d{3}|.)", "x", match.group(1), flags=re.S).encode())
        if size > MAX_TXT_STRING_BYTES:
            raise ApiError(400, ERR_CONTENT, f"TXT content string {len(strings) + 1} is {size} bytes long; each "
                                             f"quoted string may hold at most {MAX_TXT_STRING_BYTES} bytes.")
        strings.append(match.group(1))
        pos = match.end()
    return strings


def quote_plain(chunk):
    """A raw string as it stands between quotes (master-file escaping)."""
    return chunk.replace("\\", "\\\\").replace('"', '\\"')


def split_plain(text):
    """Plain text cut into strings of at most 255 UTF-8 bytes, at character boundaries."""
    chunks, current = [], ""
    for char in text:
        if len((current + char).encode()) > MAX_TXT_STRING_BYTES:
            chunks.append(current)
            current = ""
        current += char
    return chunks + [current]


def canonical_txt(content):
    """TXT content as Cloudflare stores and returns it."""
    strings = txt_strings(content)
    if strings is not None:
        return " ".join(f'"{s}"' for s in strings)
    if len(content.encode()) <= MAX_TXT_STRING_BYTES:
        return content
    quote = lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return " ".join(quote(chunk) for chunk in split_plain(content))


def record_data(record):
    """What makes two records identical: name, type and the data (TXT: its unescaped strings)."""
    content = record["content"]
    if record["type"] == "TXT":
        strings = txt_strings(content)
        data = tuple(split_plain(content)) if strings is None else tuple(
            re.sub(r"\\([\"\\])", r"\1", s) for s in strings)
    else:
        data = content
    return record["name"], record["type"], data


def normalize_name(name, zone_name):
    name = name.strip().rstrip(".").lower()
    name = zone_name if name == "@" else name
    if name != zone_name and not name.endswith("." + zone_name):
        raise ApiError(400, ERR_VALIDATION, f"DNS Validation Error: record name '{name}' is not inside zone "
                                            f"'{zone_name}' (send the fully qualified name).")
    return name


# ---------------------------------------------------------------------------------------------
# The double
# ---------------------------------------------------------------------------------------------

class Request:
    """One API request as the handlers see it."""

    def __init__(self, method, path, query, body, params):
        self.method, self.path, self.query, self.body, self.params = method, path, query, body, params
        self.zone = None


class CloudflareDouble:
    def __init__(self, contract, token, zone_names):
        self.contract, self.token = contract, token
        self.zone_names = zone_names
        self.lock = threading.RLock()
        self.started = now_iso()
        self.account_id = hashlib.md5(b"rotor-test-account").hexdigest()
        self.mirror = None  # (server, port, TSIG key file) to push TXT changes to
        self.reset()

    def reset(self):
        with self.lock:
            self.zones = {hashlib.md5(n.encode()).hexdigest(): {"id": hashlib.md5(n.encode()).hexdigest(), "name": n}
                          for n in self.zone_names}
            self.records = {zone_id: {} for zone_id in self.zones}  # zone id -> {record id: record}
            self.calls = collections.Counter()
            self.violations = []
            self.fail_next = collections.deque()
            self.delay_ms = 0

    # -- request pipeline ---------------------------------------------------------------------

    def handle(self, method, path, query_string, headers, raw_body):
        """One API request -> (status, JSON body, extra headers)."""
        template, handler, family = self.route(method, path)
        with self.lock:
            self.calls[f"{method} {template or path}"] += 1
            delay, injected = self.delay_ms, (self.fail_next.popleft() if self.fail_next else None)
        if delay:
            time.sleep(delay / 1000)
        if injected:
            return self.injected_failure(injected)
        try:
            self.authenticate(headers.get("Authorization"))
            if template is None:
                raise ApiError(404, ERR_NO_ROUTE, f"No route for that URI: {path}")
            if handler is None:
                raise ApiError(405, ERR_METHOD, f"Method {method} not allowed for {template}")
            request = self.parse(method, path, template, query_string, headers, raw_body)
            with self.lock:
                result = getattr(self, handler)(request)
            return self.respond(method, template, 200, success(*result))
        except ApiError as err:
            if err.violation:
                self.record_violation(f"{method} {path}: {err.message}")
            return self.respond(method, template, err.status, failure(err.code, err.message), family)

    def route(self, method, path):
        """(template, handler name, family) for a path under /client/v4; Nones when unknown."""
        matched = None
        for template, handlers, family in ROUTES:
            pattern = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$"
            if re.match(pattern, path):
                if method in handlers:
                    return template, handlers[method], family
                matched = matched or (template, None, family)
        return matched or (None, None, "dns-records")

    def authenticate(self, header):
        if not header:
            raise ApiError(401, ERR_AUTH, "Authentication error")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or token.strip() != self.token:
            raise ApiError(403, ERR_AUTH, "Authentication error")

    def parse(self, method, path, template, query_string, headers, raw_body):
        """Validate parameters and body against the schema; the Request with typed values."""
        op = self.contract.operation(template, method)
        if template.endswith("/batch"):
            op = self.contract.operation("/zones/{zone_id}/dns_records", "POST")
        key = f"{method} {template}"
        names = re.findall(r"\{(\w+)\}", template)
        values = re.match("^" + re.sub(r"\{(\w+)\}", r"([^/]+)", template) + "$", path).groups()
        params = {name: unquote(value) for name, value in zip(names, values)}
        self.require(key + " path", self.contract.params_schema(op, "path"), params, "path parameters")
        query = self.parse_query(key, op, template, query_string)
        body = self.parse_body(key, op, template, method, headers, raw_body)
        request = Request(method, path, query, body, params)
        if "zone_id" in params:
            request.zone = self.zones.get(params["zone_id"])
            if request.zone is None:
                raise ApiError(404, ERR_BAD_ID, f"Could not route to {path}, perhaps your object identifier is invalid?")
        return request

    def parse_query(self, key, op, template, query_string):
        extra = EXTRA_LIST_PARAMS if template == "/zones/{zone_id}/dns_records" else None
        schema = self.contract.params_schema(op, "query", extra)
        query = {}
        for name, values in parse_qs(query_string, keep_blank_values=True).items():
            if len(values) > 1:
                raise ApiError(400, ERR_SCHEMA, f"query parameter '{name}' given {len(values)} times", violation=True)
            query[name] = self.contract.coerce(values[0], schema["properties"].get(name, {}))
        self.require(key + " query", schema, query, "query parameters")
        return query

    def parse_body(self, key, op, template, method, headers, raw_body):
        if template.endswith("/batch"):
            spec = {"required": True, "content": {"application/json": {"schema": BATCH_REQUEST}}}
        else:
            spec = self.contract.resolve((op or {}).get("requestBody")) or {}
        if not raw_body:
            if spec.get("required"):
                raise ApiError(400, ERR_SCHEMA, "request body: required, but the request has none", violation=True)
            return None
        if method == "GET" or not spec:
            raise ApiError(400, ERR_SCHEMA, f"request body: {method} {template} takes none", violation=True)
        content_type = headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise ApiError(400, ERR_SCHEMA, f"request body: Content-Type must be application/json, not "
                                            f"'{content_type}'", violation=True)
        try:
            body = json.loads(raw_body)
        except ValueError as err:
            raise ApiError(400, ERR_SCHEMA, f"request body: invalid JSON ({err})", violation=True)
        schema = spec["content"]["application/json"].get("schema")
        if schema is not None:
            self.require(key + " body", schema, body, "request body")
        return body

    def require(self, key, schema, instance, what):
        error = self.contract.check(key, schema, instance)
        if error:
            raise ApiError(400, ERR_SCHEMA, f"schema violation in {what}: {error}", violation=True)

    def respond(self, method, template, status, body, family="dns-records"):
        """Validate a response the double built; a mismatch is the double's bug: 500."""
        if status == 200:
            if template.endswith("/batch"):
                schema = BATCH_RESPONSE
            else:
                schema = self.contract.operation(template, method)["responses"]["200"]["content"]["application/json"]["schema"]
            key = f"{method} {template} 200"
        else:
            schema, key = {"$ref": f"{REF}{family}_api-response-common-failure"}, f"failure {family}"
        error = self.contract.check(key, schema, body)
        if error is None:
            return status, body, {}
        message = f"test double bug: its {status} response to {method} {template} does not match the schema: {error}"
        self.record_violation(message)
        return 500, failure(ERR_SCHEMA, message), {}

    def injected_failure(self, spec):
        status = int(spec["status"])
        default_code, default_message = (ERR_RATE_LIMIT, "Please wait and consider throttling your request speed") \
            if status == 429 else (1000, f"HTTP {status} (injected by the test double)")
        headers = {"Retry-After": str(spec["retry_after"])} if spec.get("retry_after") is not None else {}
        return status, failure(int(spec.get("code", default_code)), spec.get("message", default_message)), headers

    def record_violation(self, message):
        with self.lock:
            self.violations.append(message)

    # -- token and zones ----------------------------------------------------------------------

    def verify_token(self, request):
        result = {"id": hashlib.md5(self.token.encode()).hexdigest(), "status": "active"}
        return result, None, [{"code": 10000, "message": "This API Token is valid and active"}]

    def zone_object(self, zone):
        return {
            "id": zone["id"], "name": zone["name"], "status": "active", "paused": False, "type": "full",
            "development_mode": 0, "name_servers": ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"],
            "original_name_servers": None, "original_registrar": None, "original_dnshost": None,
            "created_on": self.started, "modified_on": self.started, "activated_on": self.started,
            "owner": {"id": self.account_id, "type": "user", "name": "rotor tests"},
            "account": {"id": self.account_id, "name": "rotor tests"},
            "meta": {"step": 4, "custom_certificate_quota": 0, "page_rule_quota": 3, "phishing_detected": False},
        }

    def list_zones(self, request):
        q = request.query
        zones = [z for z in self.zones.values()
                 if ("name" not in q or zone_name_matches(q["name"], z["name"]))
                 and q.get("status", "active") == "active"]
        zones.sort(key=lambda z: z["name"], reverse=q.get("direction") == "desc")
        return paginate([self.zone_object(z) for z in zones], q.get("page", 1), q.get("per_page", 20))

    def get_zone(self, request):
        return self.zone_object(request.zone), None

    # -- records ------------------------------------------------------------------------------

    def list_records(self, request):
        q = request.query
        unsupported = sorted(k for k in q if k.startswith("tag") or k == "search")
        if unsupported:
            raise ApiError(400, ERR_VALIDATION, f"the test double does not implement the filters {unsupported}")
        checks = [RECORD_FILTERS[k](v) for k, v in q.items() if k in RECORD_FILTERS]
        combine = any if q.get("match") == "any" else all
        records = [r for r in self.records[request.zone["id"]].values()
                   if not checks or combine(check(r) for check in checks)]
        order = q.get("order", "type")
        records.sort(key=lambda r: r.get(order), reverse=q.get("direction") == "desc")
        return paginate(records, q.get("page", 1), q.get("per_page", 100))

    def get_record(self, request):
        return self.existing(request.zone, request.params["dns_record_id"]), None

    def create_record(self, request):
        records = self.records[request.zone["id"]]
        return store(records, self.build_record(request.zone, request.body)), None

    def put_record(self, request):
        records = self.records[request.zone["id"]]
        old = self.existing(request.zone, request.params["dns_record_id"])
        return store(records, self.build_record(request.zone, request.body, old)), None

    def patch_record(self, request):
        records = self.records[request.zone["id"]]
        old = self.existing(request.zone, request.params["dns_record_id"])
        return store(records, self.build_record(request.zone, {**editable(old), **request.body}, old)), None

    def delete_record(self, request):
        record = self.existing(request.zone, request.params["dns_record_id"])
        del self.records[request.zone["id"]][record["id"]]
        return {"id": record["id"]}, None

    def batch(self, request):
        """Deletes, patches, puts, posts, on a copy of the zone that replaces it only if all succeed."""
        body, zone = request.body, request.zone
        count = sum(len(body.get(key, [])) for key in BATCH_KEYS)
        if count > MAX_BATCH_OPERATIONS:
            raise ApiError(400, ERR_VALIDATION, f"Batch has {count} operations; at most {MAX_BATCH_OPERATIONS} "
                                                "are allowed per request.")
        work = dict(self.records[zone["id"]])
        done = {key: [] for key in BATCH_KEYS}
        for key in BATCH_KEYS:
            for index, item in enumerate(body.get(key, [])):
                try:
                    done[key].append(self.batch_step(key, work, zone, item))
                except ApiError as err:
                    err.message = f"{key}[{index}]: {err.message}"
                    raise
        self.records[zone["id"]] = work
        return done, None

    def batch_step(self, key, work, zone, item):
        if key == "posts":
            return store(work, self.build_record(zone, item))
        old = work.get(item["id"])
        if old is None:
            raise ApiError(404, ERR_NOT_FOUND, "Record does not exist.")
        if key == "deletes":
            return work.pop(old["id"])
        fields = {k: v for k, v in item.items() if k != "id"}
        return store(work, self.build_record(zone, {**editable(old), **fields} if key == "patches" else fields, old))

    def existing(self, zone, record_id):
        record = self.records[zone["id"]].get(record_id)
        if record is None:
            raise ApiError(404, ERR_NOT_FOUND, "Record does not exist.")
        return record

    def build_record(self, zone, fields, old=None):
        """A stored record from request fields, checked beyond the schema as Cloudflare does."""
        content = fields.get("content", "")
        if fields["type"] == "TXT":
            content = canonical_txt(content)
        if fields.get("proxied"):
            raise ApiError(400, ERR_CONTENT, "This record type cannot be proxied.")
        comment = fields.get("comment")
        if comment is not None and len(comment) > MAX_COMMENT_CHARS:
            raise ApiError(400, ERR_VALIDATION, f"DNS record has {len(comment)} characters in comment, exceeds the "
                                                f"quota of {MAX_COMMENT_CHARS}.")
        ttl = fields.get("ttl", 1)
        if ttl != 1 and not 60 <= ttl <= 86400:
            raise ApiError(400, ERR_VALIDATION, "TTL must be between 60 and 86400 seconds, or 1 for Automatic.")
        now = now_iso()
        record = {
            "id": old["id"] if old else uuid.uuid4().hex, "zone_id": zone["id"], "zone_name": zone["name"],
            "name": normalize_name(fields["name"], zone["name"]), "type": fields["type"], "content": content,
            "proxiable": False, "proxied": False, "ttl": int(ttl) if float(ttl).is_integer() else ttl,
            "locked": False, "meta": {"auto_added": False, "source": "primary"},
            "tags": list(fields.get("tags", [])), "created_on": old["created_on"] if old else now, "modified_on": now,
        }
        if comment is not None:
            record["comment"] = comment
        for extra in ("priority", "data"):
            if extra in fields:
                record[extra] = fields[extra]
        return record

    # -- control endpoints --------------------------------------------------------------------

    def control(self, method, path, query_string, raw_body):
        """The test-only endpoints -> (status, JSON body)."""
        query = {k: v[-1] for k, v in parse_qs(query_string).items()}
        try:
            body = json.loads(raw_body) if raw_body else {}
        except ValueError as err:
            return 400, {"error": f"invalid JSON: {err}"}
        with self.lock:
            if (method, path) == ("POST", "/__control"):
                return self.set_control(body)
            if (method, path) == ("GET", "/__calls"):
                return 200, {"total": sum(self.calls.values()), "by_route": dict(self.calls)}
            if (method, path) == ("GET", "/__violations"):
                return 200, list(self.violations)
            if (method, path) == ("GET", "/__records"):
                zones = [self.find_zone(query["zone"])] if "zone" in query else list(self.zones.values())
                if None in zones:
                    return 404, {"error": f"no zone {query['zone']}"}
                return 200, [r for z in zones for r in self.records[z["id"]].values()]
            if (method, path) == ("POST", "/__records"):
                return self.plant_record(body)
        return 404, {"error": f"no control endpoint {method} {path}"}

    def set_control(self, body):
        if not isinstance(body, dict):
            return 400, {"error": "expected a JSON object"}
        if body.get("reset"):
            self.reset()
        fail_next = body.get("fail_next", list(self.fail_next))
        if not isinstance(fail_next, list) or not all(isinstance(f, dict) and isinstance(f.get("status"), int)
                                                      and f["status"] >= 400 for f in fail_next):
            return 400, {"error": "fail_next: a list of objects with an HTTP error 'status' (>= 400)"}
        self.fail_next = collections.deque(fail_next)
        self.delay_ms = int(body.get("delay_ms", self.delay_ms))
        return 200, {"fail_next": list(self.fail_next), "delay_ms": self.delay_ms}

    # -- mirror: Cloudflare's own nameservers, played by a real DNS server ----------------------

    def txt_snapshot(self):
        """Every TXT record as (zone, name, ttl, strings): what nameservers would serve."""
        with self.lock:
            snapshot = set()
            for zone in self.zones.values():
                for record in self.records[zone["id"]].values():
                    if record["type"] != "TXT":
                        continue
                    strings = txt_strings(record["content"])
                    if strings is None:
                        strings = [quote_plain(chunk) for chunk in split_plain(record["content"])]
                    ttl = 300 if record["ttl"] == 1 else record["ttl"]
                    snapshot.add((zone["name"], record["name"], ttl, tuple(strings)))
            return snapshot

    def push_to_mirror(self, before, after):
        """Sends what changed to the mirror server with nsupdate (TSIG), deletions first."""
        if self.mirror is None or before == after:
            return
        server, port, key_file = self.mirror
        lines = [f"server {server} {port}"]
        for zone in sorted({z for z, *_ in before ^ after}):
            lines.append(f"zone {zone}")
            for _, name, _, strings in sorted(r for r in before - after if r[0] == zone):
                lines.append(f"update delete {name} TXT " + " ".join(f'"{s}"' for s in strings))
            for _, name, ttl, strings in sorted(r for r in after - before if r[0] == zone):
                lines.append(f"update add {name} {ttl} TXT " + " ".join(f'"{s}"' for s in strings))
            lines.append("send")
        result = subprocess.run(["nsupdate", "-k", key_file], input="\n".join(lines) + "\n",
                                capture_output=True, text=True)
        if result.returncode != 0:
            self.record_violation(f"mirror update failed: {result.stderr.strip()}")

    def find_zone(self, name_or_id):
        return self.zones.get(name_or_id) or next((z for z in self.zones.values() if z["name"] == name_or_id), None)

    def plant_record(self, body):
        """Insert a record directly (no duplicate check), as if made outside rotor."""
        zone = self.find_zone(str(body.get("zone", "")))
        if zone is None:
            return 404, {"error": f"no zone {body.get('zone')!r}"}
        try:
            record = self.build_record(zone, {"type": "TXT", **{k: v for k, v in body.items() if k != "zone"}})
        except (ApiError, KeyError, TypeError, ValueError) as err:
            return 400, {"error": getattr(err, "message", repr(err))}
        self.records[zone["id"]][record["id"]] = record
        return 200, record


# Filters of GET dns_records: parameter -> (value -> predicate on a record).
def _comment(test):
    return lambda value: lambda r: r.get("comment") is not None and test(r["comment"].lower(), value.lower())


RECORD_FILTERS = {
    "type": lambda v: lambda r: r["type"] == v,
    "name": lambda v: lambda r: r["name"] == v.rstrip(".").lower(),
    "name.exact": lambda v: lambda r: r["name"] == v.rstrip(".").lower(),
    "content": lambda v: lambda r: r["content"] == v,
    "content.exact": lambda v: lambda r: r["content"] == v,
    "proxied": lambda v: lambda r: r["proxied"] == v,
    "comment": _comment(str.__eq__),
    "comment.exact": _comment(str.__eq__),
    "comment.contains": _comment(lambda c, v: v in c),
    "comment.startswith": _comment(str.startswith),
    "comment.endswith": _comment(str.endswith),
    "comment.present": lambda v: lambda r: bool(r.get("comment")),
    "comment.absent": lambda v: lambda r: not r.get("comment"),
}


def editable(record):
    """The fields of a stored record a PATCH starts from."""
    return {k: record[k] for k in ("type", "name", "content", "ttl", "proxied", "comment", "tags", "priority", "data")
            if k in record}


def store(records, record):
    """Put `record` in `records` (id -> record) unless another record is identical to it."""
    identity = record_data(record)
    for other in records.values():
        if other["id"] != record["id"] and record_data(other) == identity:
            raise ApiError(400, ERR_DUPLICATE, "An identical record already exists.")
    records[record["id"]] = record
    return record


def paginate(items, page, per_page):
    """(page of items, result_info) as Cloudflare reports it."""
    if page != int(page) or per_page != int(per_page):
        raise ApiError(400, ERR_VALIDATION, "page and per_page must be whole numbers")
    page, per_page = int(page), int(per_page)
    chunk = items[(page - 1) * per_page: page * per_page]
    return chunk, {"page": page, "per_page": per_page, "count": len(chunk), "total_count": len(items),
                   "total_pages": math.ceil(len(items) / per_page)}


def zone_name_matches(query, name):
    """The `name` filter of GET /zones: `op:value` or a plain value (equal)."""
    ops = {"equal": str.__eq__, "not_equal": str.__ne__, "starts_with": str.startswith,
           "ends_with": str.endswith, "contains": lambda n, v: v in n}
    op, sep, value = query.partition(":")
    if not sep or op.removesuffix("_case_sensitive") not in ops:
        op, value = "equal", query
    if op.endswith("_case_sensitive"):
        return ops[op.removesuffix("_case_sensitive")](name, value)
    return ops[op](name.lower(), value.rstrip(".").lower())


# ---------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------

def make_handler(double):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "cloudflare-double"

        def log_message(self, *args):  # quiet: a test harness may never read stderr
            pass

        do_GET = lambda self: self.dispatch("GET")
        do_POST = lambda self: self.dispatch("POST")
        do_PUT = lambda self: self.dispatch("PUT")
        do_PATCH = lambda self: self.dispatch("PATCH")
        do_DELETE = lambda self: self.dispatch("DELETE")

        def dispatch(self, method):
            url = urlsplit(self.path)
            raw_body = self.read_body()
            headers = {}
            before = double.txt_snapshot()
            if url.path.startswith("/__"):
                status, body = double.control(method, url.path, url.query, raw_body)
            elif url.path.startswith(API_PREFIX + "/"):
                try:
                    status, body, headers = double.handle(method, url.path[len(API_PREFIX):], url.query,
                                                          self.headers, raw_body)
                except Exception as err:  # a bug of the double: say so rather than drop the connection
                    double.record_violation(f"test double crashed on {method} {url.path}: {err!r}")
                    status, body = 500, failure(ERR_SCHEMA, f"test double crashed: {err!r}")
            else:
                status, body = 404, failure(ERR_NO_ROUTE, f"No route for that URI: {url.path}")
            double.push_to_mirror(before, double.txt_snapshot())
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def read_body(self):
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                data = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    chunk = self.rfile.read(size + 2)[:size]
                    if size == 0:
                        return data
                    data += chunk
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    return Handler


class Server(ThreadingHTTPServer):
    request_queue_size = 128  # tests may open many connections at once
    daemon_threads = True  # a delayed request must not hold up the exit


def zone_name(value):
    name = value.strip().rstrip(".").lower()
    if not re.match(r"^([a-z0-9][\-a-z0-9]*\.)+[\-a-z0-9]{2,20}$", name):
        raise argparse.ArgumentTypeError(f"not a zone name: {value!r}")
    return name


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--schema", required=True, help="cloudflare-dns.openapi.json")
    parser.add_argument("--token", required=True, help="the only API token accepted")
    parser.add_argument("--zone", type=zone_name, action="append", required=True, help="a zone (repeatable)")
    parser.add_argument("--mirror", metavar="IP:PORT", help="push every TXT change to this DNS server (RFC 2136)")
    parser.add_argument("--mirror-key", metavar="FILE", help="the TSIG key file for --mirror (BIND format)")
    args = parser.parse_args()

    double = CloudflareDouble(Contract(args.schema), args.token, list(dict.fromkeys(args.zone)))
    if args.mirror:
        host, _, port = args.mirror.rpartition(":")
        double.mirror = (host, int(port), args.mirror_key)
    server = Server(("127.0.0.1", args.port), make_handler(double))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    print("ready", flush=True)
    while not stop.wait(0.2):
        pass
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()

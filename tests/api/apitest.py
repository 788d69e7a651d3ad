"""A controller with its operator API, started for one test and stopped after it (even on
failure), and a client that speaks to it with curl, as a customer's script would. Responses are
validated against api/openapi.yaml (JSON Schema 2020-12, the dialect of OpenAPI 3.1)."""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import jsonschema
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPEC_PATH = os.path.join(ROOT, "api", "openapi.yaml")


class Failure(Exception):
    pass


def finish(report, error=None):
    """Prints the JSON report with its status; the exit status (0 ok, 1 failed)."""
    report["status"] = "ok" if error is None else "FAILED"
    if error is not None:
        report["error"] = str(error)
    print(json.dumps(report, indent=2))
    return 0 if error is None else 1


def check(cond, what):
    if not cond:
        raise Failure(what)


class Contract:
    """api/openapi.yaml: finds the operation of a request and validates a response with it."""

    def __init__(self, path=SPEC_PATH):
        with open(path) as f:
            self.doc = yaml.safe_load(f)
        self.resolver = jsonschema.RefResolver.from_schema(self.doc)
        self.templates = []
        for p in self.doc["paths"]:
            rx = "^" + re.sub(r"\{[^}]+\}", "[^/]+", p) + "$"
            self.templates.append((p, re.compile(rx)))
        self.checked = set()  # (method, template, status)

    def operation(self, method, path):
        for template, rx in self.templates:
            if rx.match(path):
                op = self.doc["paths"][template].get(method.lower())
                if op is not None:
                    return template, op
        return None, None

    def validate(self, method, path, status, content_type, body):
        """Raises Failure when the response is not what the contract says."""
        api_path = path.split("?")[0]
        check(api_path.startswith("/api/v1"), "not an API path: " + path)
        template, op = self.operation(method, api_path[len("/api/v1"):])
        check(op is not None, "%s %s: not in api/openapi.yaml" % (method, api_path))
        responses = op["responses"]
        response = responses.get(str(status), responses.get("default"))
        check(response is not None,
              "%s %s answered %d, which the contract does not list" % (method, api_path, status))
        if "$ref" in response:
            response = self.resolve(response["$ref"])
        self.checked.add((method, template, status))
        content = response.get("content")
        if not content:
            check(body in ("", b""),
                  "%s %s %d: a body where the contract has none" % (method, api_path, status))
            return
        ct = (content_type or "").split(";")[0].strip()
        check(ct in content, "%s %s %d: Content-Type %r, the contract says %s" %
              (method, api_path, status, ct, list(content)))
        schema = content[ct].get("schema", {})
        if ct.endswith("json"):
            try:
                value = json.loads(body)
            except ValueError as e:
                raise Failure("%s %s %d: the body is not JSON: %s" % (method, api_path, status, e))
            validator = jsonschema.Draft202012Validator(schema, resolver=self.resolver)
            errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
            if errors:
                e = errors[0]
                raise Failure("%s %s %d: the body does not match the contract at %s: %s\n%s" %
                              (method, api_path, status, "/".join(str(x) for x in e.path),
                               e.message, body[:600]))

    def resolve(self, ref):
        node = self.doc
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
        return node

    def routes(self):
        """(METHOD, /api/v1 path template, x-patronus-role) of every operation."""
        out = set()
        for p, item in self.doc["paths"].items():
            for m, op in item.items():
                if m in ("get", "put", "post", "delete", "patch"):
                    out.add((m.upper(), "/api/v1" + p, op.get("x-patronus-role")))
        return out


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        return self.headers.get(name.lower())


class Controller:
    """patronus-controller with `api:` on a loopback port, in its own directory."""

    def __init__(self, build, admin="admin", password="correct horse battery staple",
                 extra_api=None, name="api"):
        self.build = build
        self.bin = os.path.join(build, "bin", "patronus-controller")
        self.dir = tempfile.mkdtemp(prefix="patronus-%s-" % name)
        self.admin = admin
        self.password = password
        self.proc = None
        self.log_path = os.path.join(self.dir, "controller.log")
        api = {"listen": "127.0.0.1:0", "request_timeout_ms": 2000}
        api.update(extra_api or {})
        with open(os.path.join(self.dir, "controller.yaml"), "w") as f:
            yaml.safe_dump({"listen": "127.0.0.1:0", "state_db": "fleet.db",
                            "admin_socket": "admin.sock", "api": api}, f)
        self.config = os.path.join(self.dir, "controller.yaml")
        self.port = None
        self.contract = Contract()
        self.calls = 0

    def __enter__(self):
        self.start(init=True)
        return self

    def __exit__(self, *exc):
        self.stop()
        if exc[0] is None:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            print("controller directory kept: " + self.dir)
            try:
                print(open(self.log_path).read()[-4000:])
            except OSError:
                pass

    def start(self, init=False):
        if init:
            r = subprocess.run([self.bin, "-c", self.config, "init", "--admin", self.admin],
                               input=self.password + "\n", text=True, capture_output=True,
                               timeout=60)
            check(r.returncode == 0, "init: " + r.stderr)
        self.log = open(self.log_path, "a")
        offset = os.path.getsize(self.log_path)
        # PATRONUS_TEST_WRAP runs the controller under a tool ("gdb -batch -ex run -ex bt --args").
        wrap = os.environ.get("PATRONUS_TEST_WRAP", "").split()
        self.proc = subprocess.Popen(wrap + [self.bin, "-c", self.config], stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            with open(self.log_path) as f:
                f.seek(offset)
                text = f.read()
            m = re.findall(r"operator API on https://\S+ \(port (\d+)", text)
            if m:
                self.port = int(m[-1])
                return
            check(self.proc.poll() is None, "the controller stopped:\n" + text)
            time.sleep(0.05)
        raise Failure("the controller did not start its API:\n" + open(self.log_path).read())

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()

    @property
    def cacert(self):
        return os.path.join(self.dir, "controller-identity", "api.crt")

    @property
    def base(self):
        return "https://localhost:%d" % self.port

    def curl(self, method, path, token=None, body=None, content_type="application/json",
             headers=None, validate=True):
        """One request with curl; the response validated against the contract."""
        args = ["curl", "-sS", "--cacert", self.cacert, "-X", method, "-o", "-", "-D", "-",
                "--max-time", "30", self.base + path]
        if token:
            args += ["-H", "Authorization: Bearer " + token]
        for k, v in (headers or {}).items():
            args += ["-H", "%s: %s" % (k, v)]
        data = None
        if body is not None:
            data = body if isinstance(body, str) else json.dumps(body)
            args += ["-H", "Content-Type: " + content_type, "--data-binary", "@-"]
        r = subprocess.run(args, input=None if data is None else data.encode(),
                           capture_output=True, timeout=60)
        check(r.returncode == 0, "curl %s %s: %s" % (method, path, r.stderr.decode()))
        head, _, payload = r.stdout.decode().partition("\r\n\r\n")
        lines = head.split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        self.calls += 1
        if validate:
            self.contract.validate(method, path, status, hdrs.get("content-type"), payload)
        return Response(status, hdrs, payload)

    def login(self, user, password, totp=None):
        body = {"user": user, "password": password}
        if totp:
            body["totp"] = totp
        r = self.curl("POST", "/api/v1/auth/login", body=body)
        check(r.status == 200, "login as %s: %d %s" % (user, r.status, r.body))
        return r.json()

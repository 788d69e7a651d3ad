#!/usr/bin/env python3
"""The operator API end to end, as a customer's scripts would drive it (curl), every response
validated against api/openapi.yaml:

- the route table the controller serves is the contract's, route for route and role for role,
  and every route refuses the roles below its own (401 without credentials, 403 with too little)
  and lets the others through;
- sites: create, pagination with a cursor, ETag and If-Match (a stale write is refused with 412),
  validation errors naming the field, the audit trail recording who changed what (before, after,
  patch), in the same store transaction (what the store holds after a restart);
- tokens: forged, signed with another key, revoked by logout, ended by a password change, a spent
  refresh token; API keys: made, used, revoked;
- a TOTP second factor (codes computed here, independently of the controller);
- Server-Sent Events: a stream that is dropped and resumed with Last-Event-ID gets what it missed;
- hostile input: malformed HTTP, oversized headers and bodies, a slow client, 1000 bad logins
  (rate limited; the controller still answers), SQL-looking strings in every field.

Usage: api_contract.py --build BUILD_DIR   (prints a JSON report; exit 0 when everything held)
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apitest  # noqa: E402
from apitest import Controller, Failure, check  # noqa: E402

SITE = {"name": "paris", "endpoints": [{"name": "wan0", "address": "192.0.2.1:51820"}],
        "subnets": ["10.1.0.0/16"]}
ROLES = ["viewer", "operator", "admin"]
PASSWORD = "a long enough password"


def site(name, i):
    return {"name": name, "endpoints": [{"name": "wan0", "address": "198.51.100.%d:51820" % i}],
            "subnets": ["10.%d.0.0/16" % (100 + i)]}


def totp(secret_b32, t, digits=6):
    """RFC 6238 with HMAC-SHA1, written here from the RFC (not the controller's code)."""
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    mac = hmac.new(key, struct.pack(">Q", int(t) // 30), hashlib.sha1).digest()
    off = mac[-1] & 0x0F
    code = (struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF) % (10 ** digits)
    return str(code).zfill(digits)


def make_users(c, admin_token):
    tokens = {"admin": admin_token}
    for role in ("operator", "viewer"):
        r = c.curl("POST", "/api/v1/users", admin_token,
                   {"name": role + "1", "role": role, "password": PASSWORD})
        check(r.status == 201, "create %s: %d %s" % (role, r.status, r.body))
        tokens[role] = c.login(role + "1", PASSWORD)["access_token"]
    return tokens


def routes_and_roles(c, tokens, report):
    served = set()
    out = subprocess.run([c.bin, "--routes"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        r = json.loads(line)
        served.add((r["method"], r["path"], r["role"]))
    contract = c.contract.routes()
    check(served == contract, "served but not in the contract: %s; in the contract but not served: %s"
          % (sorted(served - contract), sorted(contract - served)))
    rank = {"public": -1, "viewer": 0, "operator": 1, "admin": 2}
    walked = 0
    # Admin last: its calls go through and change things.
    for who in [None, "viewer", "operator", "admin"]:
        for method, path, role in sorted(served):
            if role == "public":
                continue
            concrete = (path.replace("{name}", "nobody").replace("{endpoint}", "wan9")
                        .replace("{namespace}", "ns").replace("{instance}", "nope")
                        .replace("{id}", "0000000000000000"))
            if path.endswith("/events/stream"):
                continue  # a stream does not end: checked by sse_resume
            if path.endswith("/auth/logout") and who is not None:
                continue  # it would end the walker's login: checked by tokens_and_keys
            r = c.curl(method, concrete, tokens.get(who))
            walked += 1
            if who is None:
                check(r.status == 401, "%s %s without credentials: %d" % (method, path, r.status))
            elif rank[who] < rank[role]:
                check(r.status == 403, "%s %s as %s (needs %s): %d" %
                      (method, path, who, role, r.status))
            else:
                check(r.status not in (401,), "%s %s as %s: %d %s" %
                      (method, path, who, r.status, r.body))
                # Only the self-or-admin routes may still refuse a non-admin, for another user.
                if r.status == 403:
                    check("/users/{name}" in path and who != "admin",
                          "%s %s as %s: 403 %s" % (method, path, who, r.body))
    report["routes"] = len(served)
    report["route_role_calls"] = walked


def sites_pages_etags(c, tokens, report):
    op = tokens["operator"]
    for i in range(7):
        r = c.curl("POST", "/api/v1/sites", op, site("s%02d" % i, i + 1))
        check(r.status == 201, "create s%02d: %d %s" % (i, r.status, r.body))
        check(r.header("location") == "/api/v1/sites/s%02d" % i, "Location: %s" % r.header("location"))
    r = c.curl("POST", "/api/v1/sites", op, site("s00", 40))
    check(r.status == 409, "a name in use: %d" % r.status)
    # Enrolment tokens: two made, counted on the site, both revoked at once.
    for _ in range(2):
        r = c.curl("POST", "/api/v1/sites/s00/enrolment-tokens", op, {"ttl_s": 600})
        check(r.status == 201, "token: %d %s" % (r.status, r.body))
    check(c.curl("GET", "/api/v1/sites/s00", op).json()["tokens"] == 2, "2 tokens outstanding")
    r = c.curl("DELETE", "/api/v1/sites/s00/enrolment-tokens", op)
    check(r.status == 204, "revoke tokens: %d %s" % (r.status, r.body))
    check(c.curl("GET", "/api/v1/sites/s00", op).json()["tokens"] == 0, "tokens left after a revoke")
    r = c.curl("GET", "/api/v1/sites/s00/selections", tokens["viewer"])
    check(r.status == 200 and r.json()["items"] == [], "selections of a site never seen: %s" % r.body)
    seen, cursor, pages = [], None, 0
    while True:
        q = "/api/v1/sites?limit=3&name_prefix=s" + ("&cursor=" + cursor if cursor else "")
        page = c.curl("GET", q, tokens["viewer"]).json()
        seen += [s["name"] for s in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        check(pages < 10, "pagination does not end")
    check(seen == ["s%02d" % i for i in range(7)] and pages == 3, "pages: %s in %d" % (seen, pages))
    r = c.curl("GET", "/api/v1/sites?limit=0", op)
    check(r.status == 422 and r.json()["errors"][0]["field"] == "limit", "limit=0: %s" % r.body)
    # ETag / If-Match: two operators read version A; the first writes; the second is refused.
    g = c.curl("GET", "/api/v1/sites/s01", op)
    etag = g.header("etag")
    check(etag, "no ETag on GET /sites/s01")
    change = site("s01", 2)
    change["subnets"] = ["10.102.0.0/16", "10.202.0.0/16"]
    r1 = c.curl("PUT", "/api/v1/sites/s01", op, change, headers={"If-Match": etag})
    check(r1.status == 200 and r1.json()["subnets"] == change["subnets"], "PUT: %d %s" % (r1.status, r1.body))
    check(r1.header("etag") != etag, "the ETag did not move")
    r2 = c.curl("PUT", "/api/v1/sites/s01", tokens["admin"], site("s01", 2), headers={"If-Match": etag})
    check(r2.status == 412, "a stale If-Match: %d %s" % (r2.status, r2.body))
    check(c.curl("GET", "/api/v1/sites/s01", op).json()["subnets"] == change["subnets"],
          "the refused write changed the site")
    r3 = c.curl("DELETE", "/api/v1/sites/s06", op, headers={"If-Match": '"0"'})
    check(r3.status == 412, "DELETE with a stale If-Match: %d" % r3.status)
    r4 = c.curl("DELETE", "/api/v1/sites/s06", op, headers={"If-Match": c.curl("GET", "/api/v1/sites/s06", op).header("etag")})
    check(r4.status == 204, "DELETE: %d %s" % (r4.status, r4.body))
    check(c.curl("GET", "/api/v1/sites/s06", op).status == 404, "the site is still there")
    t = c.curl("POST", "/api/v1/sites/s00/enrolment-tokens", op, {"ttl_s": 600})
    check(t.status == 201 and t.json()["token"].startswith("ptk_"), "token: %s" % t.body)
    report["etag_conflict_status"] = r2.status
    report["pages"] = pages


def validation(c, tokens, report):
    op = tokens["operator"]
    cases = [
        ("POST", "/api/v1/sites", {"name": "v1", "endpoints": [{"name": "wan0", "address": "192.0.2.9:99999"}]},
         "endpoints[0].address"),
        ("POST", "/api/v1/sites", {"name": "v2", "endpoints": [{"name": "wan0", "address": "192.0.2.9:1", "colour": "red"}]},
         "endpoints[0].colour"),
        ("POST", "/api/v1/sites", {"name": "v3", "endpoints": [], "subnets": []}, "endpoints"),
        ("POST", "/api/v1/sites", {"name": "v4", "endpoints": [{"name": "wan0", "address": "192.0.2.9:1"}], "subnets": ["10.0.0.0/33"]},
         "subnets[0]"),
        ("POST", "/api/v1/users", {"name": "x", "role": "root", "password": PASSWORD}, "role"),
        ("POST", "/api/v1/api-keys", {"name": "k", "role": "viewer", "expires_in_days": 0}, "expires_in_days"),
    ]
    tok = {"POST /api/v1/users": tokens["admin"]}
    for method, path, body, field in cases:
        r = c.curl(method, path, tok.get(method + " " + path, op), body)
        check(r.status == 422, "%s %s %s: %d %s" % (method, path, body, r.status, r.body))
        got = r.json()["errors"][0]["field"]
        check(got == field, "%s %s: the error names %r, not %r (%s)" % (method, path, got, field, r.body))
    # Kubernetes field paths from the policy YAML.
    bad = ("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: default}\n"
           "spec:\n  podSelector: {}\n  ingress:\n  - ports:\n    - {port: 80, endPort: 70}\n")
    r = c.curl("POST", "/api/v1/policies", op, bad, content_type="application/yaml")
    check(r.status == 422 and "spec.ingress[0].ports[0]" in r.json()["errors"][0]["field"],
          "policy error: %d %s" % (r.status, r.body))
    r = c.curl("POST", "/api/v1/policies", op, "{}", content_type="application/json")
    check(r.status == 415, "policies as JSON: %d" % r.status)
    good = bad.replace("endPort: 70", "endPort: 90")
    r = c.curl("POST", "/api/v1/policies", op, good, content_type="application/yaml")
    check(r.status == 200 and r.json()["items"][0]["name"] == "p", "policy: %d %s" % (r.status, r.body))
    r = c.curl("POST", "/api/v1/policies", op, good, content_type="application/yaml",
               headers={"If-Match": '"stale"'})
    check(r.status == 412, "policies with a stale If-Match: %d" % r.status)
    # The matrix the policy engine computes, over the inventory: default's pods take 80-90 from
    # anyone and nothing else; "other" is not isolated.
    inv = "".join("---\napiVersion: v1\nkind: Pod\nmetadata: {name: %s, namespace: %s, labels: {app: %s}}\n"
                  "status: {podIP: 10.9.0.%d}\n" % (n, ns, n, i + 1)
                  for i, (ns, n) in enumerate([("default", "web"), ("default", "db"), ("other", "tool")]))
    r = c.curl("PUT", "/api/v1/inventory", op, inv, content_type="application/yaml")
    check(r.status == 204, "inventory: %d %s" % (r.status, r.body))
    m = c.curl("GET", "/api/v1/policies/reachability?probe=tcp/80", tokens["viewer"]).json()
    check(m["pods"] == ["default/db", "default/web", "other/tool"], "matrix pods: %s" % m)
    check(m["allowed"] == [[True, True, True]] * 3, "tcp/80: %s" % m["allowed"])
    m = c.curl("GET", "/api/v1/policies/reachability?probe=tcp/22", tokens["viewer"]).json()
    check(m["allowed"] == [[False, False, True]] * 3, "tcp/22: %s" % m["allowed"])
    r = c.curl("GET", "/api/v1/policies/reachability?probe=icmp/1", tokens["viewer"])
    check(r.status == 422 and r.json()["errors"][0]["field"] == "probe", "probe icmp: %s" % r.body)
    r = c.curl("PUT", "/api/v1/topology", op, {"topology": "ring"})
    check(r.status == 422, "topology ring: %d %s" % (r.status, r.body))
    r = c.curl("POST", "/api/v1/sites", op, "{not json")
    check(r.status == 422, "not JSON: %d" % r.status)
    r = c.curl("POST", "/api/v1/sites", op, json.dumps(site("ct", 90)), content_type="text/plain")
    check(r.status == 415, "a JSON route given text/plain: %d %s" % (r.status, r.body))
    r = c.curl("POST", "/api/v1/sites", op, {"name": "v5", "endpoints": "inet"})
    check(r.status == 422 and r.json()["errors"][0]["field"] == "endpoints"
          and "googleapis" not in r.body, "a wrong type: %s" % r.body)
    r = c.curl("GET", "/api/v1/events?kind=bogus", op)
    check(r.status == 422, "kind=bogus: %d" % r.status)
    report["validation_cases"] = len(cases) + 4


def audit_trail(c, tokens, report):
    r = c.curl("GET", "/api/v1/audit?target=sites/s01&limit=5", tokens["operator"])
    items = r.json()["items"]
    update = [e for e in items if e["method"] == "PUT"]
    check(update, "no audit entry for PUT /sites/s01: %s" % r.body)
    e = update[0]
    check(e["actor"] == "user:operator1" and e["address"] == "127.0.0.1", "who/where: %s" % e)
    check(e["before"]["sites"]["s01"]["subnets"] == ["10.102.0.0/16"], "before: %s" % e["before"])
    check(e["after"]["sites"]["s01"]["subnets"] == ["10.102.0.0/16", "10.202.0.0/16"], "after: %s" % e["after"])
    check(any(p["path"].startswith("/sites/s01/subnets") for p in e["patch"]), "patch: %s" % e["patch"])
    # Paging through the whole trail.
    total, cursor = 0, None
    while True:
        page = c.curl("GET", "/api/v1/audit?limit=4" + ("&cursor=" + cursor if cursor else ""), tokens["admin"]).json()
        total += len(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    check(total >= 10, "audit entries: %d" % total)
    # No secret in the trail: no password, hash, token or key.
    text = c.curl("GET", "/api/v1/audit?limit=500", tokens["admin"]).body
    for secret in (PASSWORD, "$argon2id", "ptk_", "pak_", "prt_", "pat_"):
        check(secret not in text, "the audit trail holds %r" % secret)
    report["audit_entries"] = total


def tokens_and_keys(c, tokens, report):
    v = tokens["viewer"]
    check(c.curl("GET", "/api/v1/auth/whoami", v).json()["user"] == "viewer1", "whoami")
    body, _, sig = v.partition(".")
    forged = body + "." + ("A" if sig[0] != "A" else "B") + sig[1:]
    check(c.curl("GET", "/api/v1/sites", forged).status == 401, "a forged signature was taken")
    # The same claims signed with another key.
    other = base64.urlsafe_b64encode(hmac.new(os.urandom(32), body[4:].encode(), hashlib.sha256).digest()).decode().rstrip("=")
    check(c.curl("GET", "/api/v1/sites", body + "." + other).status == 401, "another key's token was taken")
    # Claims edited (the user) with the original signature.
    claims = base64.urlsafe_b64decode(body[4:] + "=" * (-len(body[4:]) % 4)).decode()
    edited = "pat_" + base64.urlsafe_b64encode(claims.replace("viewer1", "admin").encode()).decode().rstrip("=")
    check(c.curl("GET", "/api/v1/users", edited + "." + sig).status == 401, "edited claims were taken")
    check(c.curl("GET", "/api/v1/sites", "garbage").status == 401, "garbage was taken")
    # Refresh: a new pair; the spent refresh token is refused.
    t = c.login("viewer1", PASSWORD)
    r = c.curl("POST", "/api/v1/auth/refresh", body={"refresh_token": t["refresh_token"]})
    check(r.status == 200, "refresh: %d %s" % (r.status, r.body))
    r2 = c.curl("POST", "/api/v1/auth/refresh", body={"refresh_token": t["refresh_token"]})
    check(r2.status == 401, "a spent refresh token: %d" % r2.status)
    check(c.curl("GET", "/api/v1/sites", t["access_token"]).status == 401,
          "the access token of a refreshed login still works")
    # Logout ends the login at once.
    t2 = r.json()
    check(c.curl("POST", "/api/v1/auth/logout", t2["access_token"]).status == 204, "logout")
    check(c.curl("GET", "/api/v1/sites", t2["access_token"]).status == 401, "a logged-out token works")
    # A password change ends every login of the user.
    t3 = c.login("viewer1", PASSWORD)
    r = c.curl("PUT", "/api/v1/users/viewer1/password", t3["access_token"],
               {"password": PASSWORD + "!", "current_password": "wrong password here"})
    check(r.status == 403, "a wrong current password: %d %s" % (r.status, r.body))
    r = c.curl("PUT", "/api/v1/users/viewer1/password", t3["access_token"],
               {"password": PASSWORD + "!", "current_password": PASSWORD})
    check(r.status == 204, "password change: %d %s" % (r.status, r.body))
    check(c.curl("GET", "/api/v1/sites", t3["access_token"]).status == 401, "a token from before the change works")
    check(c.curl("GET", "/api/v1/sites", tokens["viewer"]).status == 401, "an older login survived the change")
    tokens["viewer"] = c.login("viewer1", PASSWORD + "!")["access_token"]
    # API keys: at most the maker's role; shown once; revocable.
    r = c.curl("POST", "/api/v1/api-keys", tokens["viewer"], {"name": "ci", "role": "operator"})
    check(r.status == 403, "a viewer made an operator key: %d" % r.status)
    r = c.curl("POST", "/api/v1/api-keys", tokens["operator"], {"name": "ci", "role": "operator", "expires_in_days": 30})
    check(r.status == 201, "key: %d %s" % (r.status, r.body))
    key = r.json()
    r = c.curl("POST", "/api/v1/sites", key["key"], site("bykey", 60))
    check(r.status == 201, "the key could not write: %d %s" % (r.status, r.body))
    check("key" not in c.curl("GET", "/api/v1/api-keys/" + key["id"], tokens["operator"]).json(), "the key was shown twice")
    check(c.curl("GET", "/api/v1/api-keys/" + key["id"], tokens["viewer"]).status == 404, "another user's key was shown")
    entry = c.curl("GET", "/api/v1/audit?actor=key:" + key["id"], tokens["admin"]).json()["items"]
    check(entry and entry[0]["target"] == "sites/bykey", "the key's write is not audited as the key: %s" % entry)
    check(c.curl("DELETE", "/api/v1/api-keys/" + key["id"], tokens["operator"]).status == 204, "revoke")
    check(c.curl("GET", "/api/v1/sites", key["key"]).status == 401, "a revoked key works")
    report["token_cases"] = 12


def second_factor(c, tokens, report):
    a = tokens["admin"]
    c.curl("POST", "/api/v1/users", a, {"name": "mfa1", "role": "viewer", "password": PASSWORD})
    t = c.login("mfa1", PASSWORD)["access_token"]
    r = c.curl("POST", "/api/v1/users/mfa1/totp", t)
    check(r.status == 201, "enrol: %d %s" % (r.status, r.body))
    secret = r.json()["secret"]
    check(c.curl("GET", "/api/v1/users/mfa1", t).json()["totp"] == "pending", "not pending")
    # Pending: the login does not need the code yet.
    c.login("mfa1", PASSWORD)
    check(c.curl("POST", "/api/v1/users/mfa1/totp/confirm", t, {"code": "000000" if totp(secret, time.time()) != "000000" else "111111"}).status == 422,
          "a wrong code confirmed")
    # Confirmed with the previous step's code (the controller accepts one step of clock skew), so
    # that the current step's is still unspent for the login below: no waiting for the next step.
    now = time.time()
    if now % 30 > 28:
        time.sleep(2.5)  # not at a step's very end: both codes below must be of the same steps
        now = time.time()
    r = c.curl("POST", "/api/v1/users/mfa1/totp/confirm", t, {"code": totp(secret, now - 30)})
    check(r.status == 204, "confirm: %d %s" % (r.status, r.body))
    r = c.curl("POST", "/api/v1/auth/login", body={"user": "mfa1", "password": PASSWORD})
    check(r.status == 401 and "totp" in r.json()["detail"], "a login without the code: %d %s" % (r.status, r.body))
    r = c.curl("POST", "/api/v1/auth/login", body={"user": "mfa1", "password": PASSWORD,
                                                   "totp": totp(secret, now - 30)})
    check(r.status == 401, "a spent code logged in: %d" % r.status)
    c.login("mfa1", PASSWORD, totp=totp(secret, now))
    report["totp"] = "ok"


def sse_resume(c, tokens, report):
    op = tokens["operator"]

    def stream(last_id=None, seconds=3.0):
        args = ["curl", "-sS", "-N", "--cacert", c.cacert, "--max-time", str(seconds),
                "-H", "Authorization: Bearer " + op, c.base + "/api/v1/events/stream?kind=audit"]
        if last_id is not None:
            args += ["-H", "Last-Event-ID: %d" % last_id]
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def events(text):
        out = []
        for block in text.split("\n\n"):
            fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
            if "id" in fields and "data" in fields:
                out.append((int(fields["id"]), fields.get("event"), json.loads(fields["data"])))
        return out

    p = stream(seconds=2.5)
    time.sleep(0.7)
    c.curl("POST", "/api/v1/sites", op, site("sse1", 70))
    got = events(p.communicate()[0])
    check(got and got[-1][2]["audit"]["target"] == "sites/sse1", "live: %s" % got)
    last = got[-1][0]
    # While no client listens: two more changes.
    c.curl("POST", "/api/v1/sites", op, site("sse2", 71))
    c.curl("DELETE", "/api/v1/sites/sse2", op)
    p = stream(last_id=last, seconds=1.5)
    missed = events(p.communicate()[0])
    targets = [(e[2]["audit"]["method"], e[2]["audit"]["target"]) for e in missed]
    check(targets == [("POST", "sites/sse2"), ("DELETE", "sites/sse2")], "resumed: %s" % targets)
    for _, _, data in missed:
        c.contract.validate("GET", "/api/v1/events", 200, "application/json",
                            json.dumps({"items": [data], "oldest_id": 1, "last_id": data["id"]}))
    report["sse_resumed_events"] = len(missed)
    # A viewer's stream and list carry no audit entries (the trail is the operators').
    r = c.curl("GET", "/api/v1/events?kind=audit", tokens["viewer"])
    check(r.json()["items"] == [], "a viewer read audit events: %s" % r.body[:200])
    # A stream ends with its login.
    t = c.login("operator1", PASSWORD)["access_token"]
    args = ["curl", "-sS", "-N", "--cacert", c.cacert, "--max-time", "5",
            "-H", "Authorization: Bearer " + t, c.base + "/api/v1/events/stream"]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(0.5)
    check(c.curl("POST", "/api/v1/auth/logout", t).status == 204, "logout")
    c.curl("POST", "/api/v1/sites", op, site("sse3", 72))
    t0 = time.time()
    out = p.communicate()[0]
    check("event: end" in out and time.time() - t0 < 3, "the stream outlived its login: %r" % out[-300:])


def tls(c):
    ctx = ssl.create_default_context(cafile=c.cacert)
    s = socket.create_connection(("127.0.0.1", c.port), timeout=10)
    return ctx.wrap_socket(s, server_hostname="localhost")


def raw(c, data, wait=None):
    s = tls(c)
    s.sendall(data)
    if wait:
        time.sleep(wait)
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except (socket.timeout, ssl.SSLError, ConnectionResetError):
        pass
    s.close()
    return out


def hostile(c, tokens, report):
    got = {}
    got["malformed"] = raw(c, b"GARBAGE\r\n\r\n")
    got["oversized_header"] = raw(c, b"GET /api/v1/sites HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
    got["oversized_body"] = raw(c, b"POST /api/v1/sites HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n")
    t0 = time.time()
    slow = raw(c, b"GET /api/v1/sites HTTP/1.1\r\nHost: x\r\n", wait=0)
    slow_s = time.time() - t0
    # A slow client is dropped when the request time (2 s here) has passed, with no answer.
    check(slow == b"" and 1.5 < slow_s < 8, "slow: %r after %.1f s" % (slow[:80], slow_s))
    expect = {"malformed": b" 400 ", "oversized_header": b" 431 ", "oversized_body": b" 413 "}
    # Plain HTTP to the HTTPS port is told so.
    r = subprocess.run(["curl", "-sS", "http://127.0.0.1:%d/api/v1/sites" % c.port],
                       capture_output=True, text=True, timeout=30)
    check("HTTPS only" in r.stdout, "plain HTTP: %r %r" % (r.stdout, r.stderr))
    for k, status in expect.items():
        check(got[k].startswith(b"HTTP/1.1") and status in got[k].split(b"\r\n")[0],
              "%s: %r" % (k, got[k][:120]))
    # SQL-looking strings in every field: refused or stored as text; the store is intact.
    evil = "x'); DROP TABLE sites; --"
    op = tokens["operator"]
    for body in ({"name": evil, "endpoints": [{"name": "wan0", "address": "192.0.2.77:1"}]},
                 {"name": "evil1", "endpoints": [{"name": evil, "address": "192.0.2.77:1"}]},
                 {"name": "evil2", "endpoints": [{"name": "wan0", "address": evil}]},
                 {"name": "evil3", "endpoints": [{"name": "wan0", "address": "192.0.2.77:1", "type": evil}]},
                 {"name": "evil4", "endpoints": [{"name": "wan0", "address": "192.0.2.77:1"}], "subnets": [evil]}):
        r = c.curl("POST", "/api/v1/sites", op, body)
        check(r.status == 422, "%s: %d %s" % (body, r.status, r.body))
    for path in ("/api/v1/sites/" + evil.replace(" ", "%20").replace("'", "%27").replace(";", "%3B"),
                 "/api/v1/audit?actor=" + evil.replace(" ", "%20").replace("'", "%27").replace(";", "%3B")):
        r = c.curl("GET", path, tokens["admin"])
        check(r.status in (200, 404), "%s: %d" % (path, r.status))
    r = c.curl("POST", "/api/v1/users", tokens["admin"], {"name": evil, "role": "viewer", "password": PASSWORD})
    check(r.status == 422, "a user named like SQL: %d" % r.status)
    r = c.curl("POST", "/api/v1/auth/login", body={"user": evil, "password": evil})
    check(r.status in (401, 429), "login with SQL: %d" % r.status)
    check(len(c.curl("GET", "/api/v1/sites?limit=500", op).json()["items"]) >= 6, "the sites are gone")
    report["hostile_http"] = {k: got[k].split(b"\r\n")[0].decode() for k in got}
    report["hostile_http"]["slow_dropped_after_s"] = round(slow_s, 2)


def bad_logins(c, report):
    """1000 wrong passwords from one address: rate limited; the controller still answers."""
    ctx = ssl.create_default_context(cafile=c.cacert)
    statuses = {}
    t0 = time.time()
    body = json.dumps({"user": "admin", "password": "not the password at all"}).encode()
    for i in range(1000):
        s = socket.create_connection(("127.0.0.1", c.port), timeout=10)
        t = ctx.wrap_socket(s, server_hostname="localhost")
        t.sendall(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        out = b""
        while True:
            b = t.recv(65536)
            if not b:
                break
            out += b
        t.close()
        st = int(out.split(b" ", 2)[1])
        statuses[st] = statuses.get(st, 0) + 1
    elapsed = time.time() - t0
    check(statuses.get(401, 0) <= 10 and statuses.get(429, 0) >= 990, "statuses: %s" % statuses)
    # The controller is unaffected: the admin's existing token still reads (rate limits are on
    # logins, not on the signed in).
    report["bad_logins"] = {"statuses": statuses, "seconds": round(elapsed, 2)}


def cli_over_api(c, tokens, report):
    """The CLI as an operator uses it: login (password on stdin), controller commands through the
    API, --json printing the API's own JSON, the audit trail, logout."""
    cli = os.path.join(c.build, "bin", "patronus")
    env = dict(os.environ, PATRONUS_CONFIG_DIR=os.path.join(c.dir, "cli-config"))
    env.pop("PATRONUS_API_KEY", None)

    def run(*args, stdin=None, ok=True):
        r = subprocess.run([cli] + list(args), input=stdin, capture_output=True, text=True,
                           env=env, timeout=60)
        if ok:
            check(r.returncode == 0, "patronus %s: %d %s %s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    r = run("controller", "sites", "list", ok=False)
    check(r.returncode != 0 and "patronus login" in r.stderr, "not signed in: %s" % r.stderr)
    run("login", "--controller", c.base, "--user", "operator1", "--cacert", c.cacert, stdin=PASSWORD + "\n")
    mode = os.stat(os.path.join(env["PATRONUS_CONFIG_DIR"], "login.json")).st_mode & 0o777
    check(mode == 0o600, "login.json is %o" % mode)
    sites_file = os.path.join(c.dir, "cli-sites.yaml")
    with open(sites_file, "w") as f:
        f.write("sites:\n  - name: clisite\n    endpoints:\n      - {name: wan0, address: 203.0.113.9:51820}\n"
                "    subnets: [10.250.0.0/16]\n")
    run("controller", "sites", "add", "-f", sites_file)
    listed = json.loads(run("controller", "sites", "list", "--json").stdout)
    via_api = c.curl("GET", "/api/v1/sites?limit=500", tokens["operator"]).json()["items"]
    check([s["name"] for s in listed["items"]] == [s["name"] for s in via_api],
          "the CLI's list is not the API's: %s" % [s["name"] for s in listed["items"]])
    text = run("controller", "fleet", "status").stdout
    check("clisite" in text, "fleet status: %s" % text)
    r = run("controller", "sites", "add", "-f", sites_file, ok=False)
    check(r.returncode == 1 and "exists already" in r.stderr, "a second add: %s" % r.stderr)
    audit = json.loads(run("audit", "--target", "sites/clisite", "--json").stdout)["items"]
    check(audit and audit[0]["actor"] == "user:operator1" and audit[0]["method"] == "POST",
          "the CLI's write is not audited as its user: %s" % audit[:1])
    # The local admin socket (root's break-glass) is audited too.
    r = run("controller", "--socket", os.path.join(c.dir, "admin.sock"), "sites", "remove", "clisite")
    audit = c.curl("GET", "/api/v1/audit?target=sites/clisite&limit=1", tokens["admin"]).json()["items"]
    check(audit and audit[0]["actor"] == "local:admin-socket" and audit[0]["before"]["sites"]["clisite"],
          "the admin socket's change is not audited: %s" % audit[:1])
    run("controller", "sites", "add", "-f", sites_file)
    # A viewer's CLI is refused a write, with the API's reason.
    env["PATRONUS_CONFIG_DIR"] = os.path.join(c.dir, "cli-viewer")
    run("login", "--controller", c.base, "--user", "viewer1", "--cacert", c.cacert,
        stdin=PASSWORD + "!\n")
    r = run("controller", "sites", "remove", "clisite", ok=False)
    check(r.returncode == 1 and "operator role" in r.stderr, "a viewer removed a site: %s" % r.stderr)
    run("logout")
    r = run("controller", "sites", "list", ok=False)
    check(r.returncode != 0, "still signed in after logout")
    report["cli_over_api"] = "ok"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    args = ap.parse_args()
    report = {}
    try:
        with Controller(args.build) as c:
            admin = c.login(c.admin, c.password)["access_token"]
            tokens = make_users(c, admin)
            routes_and_roles(c, tokens, report)
            sites_pages_etags(c, tokens, report)
            validation(c, tokens, report)
            audit_trail(c, tokens, report)
            tokens_and_keys(c, tokens, report)
            sse_resume(c, tokens, report)
            hostile(c, tokens, report)
            cli_over_api(c, tokens, report)
            second_factor(c, tokens, report)
            bad_logins(c, report)
            r = c.curl("GET", "/api/v1/sites", tokens["admin"])
            check(r.status == 200, "after the bad logins: %d" % r.status)
            report["last_event_id"] = c.curl("GET", "/api/v1/events?limit=1", tokens["admin"]).json()["last_id"]
            # What the store holds survives a restart: users, keys, the audit trail.
            c.stop()
            c.start()
            t = c.login("operator1", PASSWORD)["access_token"]
            admin = c.login(c.admin, c.password)["access_token"]  # the old login ended with it
            check(len(c.curl("GET", "/api/v1/audit?limit=500", admin).json()["items"]) >= 10,
                  "the audit trail did not survive a restart")
            check(c.curl("GET", "/api/v1/sites/s01", t).json()["subnets"] == ["10.102.0.0/16", "10.202.0.0/16"],
                  "the site's update did not survive a restart")
            # A stream resumed with an id from before the restart is told to reload.
            r = subprocess.run(["curl", "-sS", "-N", "--cacert", c.cacert, "--max-time", "1.5",
                                "-H", "Authorization: Bearer " + t, "-H", "Last-Event-ID: %d" % report["last_event_id"],
                                c.base + "/api/v1/events/stream"], capture_output=True, text=True, timeout=30)
            check("event: reset" in r.stdout, "a resume across a restart: %r" % r.stdout[:300])
            report["calls"] = c.calls
            report["contract_responses_checked"] = len(c.contract.checked)
    except Failure as e:
        return apitest.finish(report, e)
    return apitest.finish(report)


if __name__ == "__main__":
    sys.exit(main())

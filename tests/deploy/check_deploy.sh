#!/usr/bin/env bash
# What deploy/ ships, checked by the tools that will read it: promtool on the Prometheus rules
# (syntax, lint, and the unit tests in tests/deploy/patronus-rules.test.yaml), systemd-analyze
# verify on the service units, systemd-sysusers on the users file.
#
#   tests/deploy/check_deploy.sh <build_dir>
#
# The build tree is needed because `systemd-analyze verify` refuses an ExecStart= binary that does
# not exist: the units are verified from a temporary copy whose /usr/bin/patronusd and
# /usr/bin/patronus-controller point at <build_dir>/bin instead. Nothing else is changed.
#
# Exit 0: clean. 1: at least one finding (each printed with FAIL). 2: bad usage, or a tool or a
# built binary missing. systemd-analyze exits 0 on some findings (an unknown key, a value it
# cannot parse: "ignoring"), so any line of its output that names one of our units or files is a
# finding too. No line of that kind is accepted as benign: on Debian 12 (systemd 252) clean
# units print nothing at all.
set -euo pipefail

if [[ $# -ne 1 || ! -d $1 ]]; then
  echo "usage: $0 <build_dir>" >&2
  exit 2
fi
build=$(cd "$1" && pwd)
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
promtool=${PROMTOOL:-/usr/bin/promtool}

for tool in "$promtool" systemd-analyze systemd-sysusers; do
  if ! command -v "$tool" >/dev/null; then
    echo "$tool: not found (Debian: apt-get install prometheus systemd)" >&2
    exit 2
  fi
done
for bin in patronusd patronus-controller; do
  if [[ ! -x $build/bin/$bin ]]; then
    echo "$build/bin/$bin: missing; build it first (systemd-analyze verify needs it)" >&2
    exit 2
  fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/check_deploy.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

findings=0
fail() {
  echo "FAIL: $*"
  findings=$((findings + 1))
}

# Runs a command, shows its output, and returns its output in $out and its status in $rc
# (without tripping set -e).
run() {
  echo "+ $*"
  rc=0
  out=$("$@" 2>&1) || rc=$?
  [[ -z $out ]] || printf '%s\n' "$out"
}

# --- Prometheus rules --------------------------------------------------------------------------
# --lint-fatal: promtool only warns about duplicate rules otherwise.
run "$promtool" check rules --lint=all --lint-fatal "$src/deploy/prometheus/patronus-rules.yaml"
((rc == 0)) || fail "promtool check rules (exit $rc)"
# rule_files in the test file are relative to the test file itself, so any working directory does.
run "$promtool" test rules "$src/tests/deploy/patronus-rules.test.yaml"
((rc == 0)) || fail "promtool test rules (exit $rc)"

# --- systemd units -----------------------------------------------------------------------------
units=$tmp/units
mkdir "$units"
cp "$src/deploy/systemd/patronusd@.service" "$src/deploy/systemd/patronus-controller.service" \
  "$units/"
sed -i -E "s#^(Exec[A-Za-z]+=[-+!@:]*)/usr/bin/(patronusd|patronus-controller)( |\$)#\1$build/bin/\2\3#" \
  "$units"/*.service
for u in "$units"/*.service; do
  if grep -E '^Exec[A-Za-z]+=[-+!@:]*/usr/bin/patronus' "$u"; then
    fail "$(basename "$u"): an Exec line was not pointed at the build tree"
  fi
done
# A template cannot run by itself: verify one instance of it, as `systemctl start` would.
# --man=no: no Documentation= man page to look up (and a build machine may have no man pages).
# The default --recursive-errors=yes: a dependency that cannot be loaded is a finding too.
for unit in patronusd@example.service patronus-controller.service; do
  run systemd-analyze verify --man=no "$units/$unit"
  ((rc == 0)) || fail "systemd-analyze verify $unit (exit $rc)"
  stem=${unit%%@*}
  stem=${stem%.service}
  if grep -E "$stem|$units" <<<"$out" >/dev/null; then
    fail "systemd-analyze verify $unit: the lines above name the unit"
  fi
done

# --- system users ------------------------------------------------------------------------------
root=$tmp/root
mkdir -p "$root/etc" "$root/usr/lib/sysusers.d"
cp "$src/deploy/systemd/patronus.sysusers" "$root/usr/lib/sysusers.d/patronus.conf"
run systemd-sysusers --dry-run --root="$root"
((rc == 0)) || fail "systemd-sysusers (exit $rc)"
if grep -E 'patronus\.conf' <<<"$out" >/dev/null; then
  fail "systemd-sysusers: the lines above name patronus.sysusers"
fi
if ! grep -q "Creating user 'patronus-controller'" <<<"$out"; then
  fail "systemd-sysusers: no user patronus-controller would be created"
fi

# --- example configs --------------------------------------------------------------------------
# What the package ships as a starting point must pass --check once its placeholders are filled:
# the controller's pin, and paths moved into a temporary tree with the build's plugins.
ex=$tmp/examples
mkdir -p "$ex/etc/patronus" "$ex/var/lib/patronus/hq" "$ex/var/lib/patronus-controller"
install -d -m 0700 "$ex/etc/patronus/keys"
echo "token-not-used-by-check" >"$ex/etc/patronus/hq.token"
chmod 0600 "$ex/etc/patronus/hq.token"
pin="ed25519:$(head -c 32 /dev/urandom | base64)"
sed -e "s|/usr/lib/patronus/plugins|$build/plugins|" -e "s|/etc/patronus|$ex/etc/patronus|g" \
  -e "s|/var/lib/patronus|$ex/var/lib/patronus|g" -e "s|/run/patronus|$ex/run|g" \
  -e "s|ed25519:REPLACE-WITH-THE-CONTROLLER-KEY=|$pin|" \
  "$src/deploy/examples/site.yaml" >"$ex/site.yaml"
sed -e "s|/var/lib/patronus-controller|$ex/var/lib/patronus-controller|g" \
  -e "s|/run/patronus-controller|$ex/run|g" \
  "$src/deploy/examples/controller.yaml" >"$ex/controller.yaml"
run "$build/bin/patronusd" --check --config "$ex/site.yaml"
((rc == 0)) || fail "deploy/examples/site.yaml: patronusd --check (exit $rc)"
run "$build/bin/patronus-controller" --check --config "$ex/controller.yaml"
((rc == 0)) || fail "deploy/examples/controller.yaml: patronus-controller --check (exit $rc)"

if ((findings > 0)); then
  echo "check_deploy: $findings finding(s)"
  exit 1
fi
echo "check_deploy: rules, their tests, units, users and example configs clean"

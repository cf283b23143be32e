#!/usr/bin/env bash
# The routerd demo, until the virtual home network (network namespaces with real ISP and LAN peers) lands:
# start routerd with a fresh --perm, pair rtrctl with it through a one-time code, show `rtrctl status`, then
# revoke the identity and show that the router rejects it. Cleans up everything it started, also on Ctrl-C.
set -uo pipefail
cd "$(dirname "$0")/.."

# A free loopback port, unless one is given.
port="${DEMO_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
work="$(mktemp -d /tmp/routerd-demo.XXXXXX)"
routerd_pid=""
cleanup() {
  if [ -n "$routerd_pid" ] && kill -0 "$routerd_pid" 2>/dev/null; then
    kill -TERM "$routerd_pid" 2>/dev/null
    wait "$routerd_pid" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

declare -a results=()
failed=0
step() { # step NAME COMMAND...
  local name="$1"; shift
  echo
  echo "── $name"
  if "$@"; then results+=("✔ $name"); else results+=("✘ $name"); failed=1; fi
}

bash scripts/setup.sh || { echo "installing the demo's packages failed"; exit 1; }
echo "building routerd and rtrctl (the first build takes a few minutes)…"
cargo build --quiet -p routerd -p rtrctl || { echo "build failed"; exit 1; }
routerd=target/debug/routerd
rtrctl=target/debug/rtrctl
export RTRCTL_ROUTER="127.0.0.1:$port" RTRCTL_IDENTITY="$work/identity.pem"

start_routerd() {
  "$routerd" run --perm "$work/perm" --listen "127.0.0.1:$port" 2>"$work/routerd.log" &
  routerd_pid=$!
  for _ in $(seq 100); do
    grep -q "serving gRPC" "$work/routerd.log" 2>/dev/null && { cat "$work/routerd.log"; return 0; }
    kill -0 "$routerd_pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$work/routerd.log"
  return 1
}

pair() {
  local code
  code="$("$routerd" pki pairing-code --perm "$work/perm")" || return 1
  echo "pairing code: $code"
  "$rtrctl" pair --code "$code" --name demo-laptop
}

status_json() {
  "$rtrctl" -o json status > "$work/status.json" &&
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("version", d["version"], "| services:", ", ".join(s["name"]+"="+s["state"] for s in d["services"]))' "$work/status.json"
}

grpc_reflection() {
  python3 scripts/grpc_list_services.py "127.0.0.1:$port" "$work/identity.pem"
}

reused_code_refused() {
  local code
  code="$("$routerd" pki pairing-code --perm "$work/perm")" || return 1
  "$rtrctl" --identity "$work/second.pem" pair --code "$code" --name second >/dev/null || return 1
  ! "$rtrctl" --identity "$work/third.pem" pair --code "$code" --name third
}

revoked_is_rejected() {
  "$routerd" pki revoke --perm "$work/perm" --name demo-laptop || return 1
  ! "$rtrctl" status
}

step "routerd starts with an empty --perm (creates its CA)" start_routerd
if [ "$failed" != 0 ]; then
  echo "routerd did not start; see its log above"
  exit 1
fi
step "rtrctl pairs with a one-time code" pair
step "rtrctl status" "$rtrctl" status
step "rtrctl -o json status" status_json
step "a standard gRPC client lists the services (reflection) with the identity" grpc_reflection
step "a pairing code works only once" reused_code_refused
step "a revoked identity is rejected" revoked_is_rejected

echo
echo "── summary"
printf '%s\n' "${results[@]}"
exit "$failed"

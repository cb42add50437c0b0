#!/usr/bin/env bash
# `make demo`: a relay and two peers. As root, in the NAT lab (network namespaces with
# real NATs: scripts/demo_lab.py); otherwise on this machine's loopback. Peer A shares
# a folder, peer B joins with the join code; both learn their public address and NAT
# behaviour by STUN, run the PAKE through the relay, exchange candidates in the sealed
# channel, punch a direct UDP path and connect QUIC over it (the FUSE mount: issue 5).
# Everything started here is stopped by PID on exit.
set -euo pipefail
build=${1:-build/release}
# PEERTUN_DEMO_LOOPBACK=1 shows the loopback flow even as root.
if [[ -z ${PEERTUN_DEMO_LOOPBACK:-} && $(id -u) == 0 ]] && python3 -c "import sys; sys.path.insert(0, 'tests'); from natlab import lab; sys.exit(0 if lab.available()[0] else 1)"; then
  exec python3 scripts/demo_lab.py "$build"
fi
relay_bin=$build/app/peertun-relay/peertun-relay
peertun_bin=$build/app/peertun/peertun
work=$(mktemp -d /tmp/peertun-demo.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# Waits (bounded) until FILE has a line matching REGEX.
wait_for() {
  local file=$1 regex=$2
  for _ in $(seq 1 100); do
    grep -qE "$regex" "$file" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "demo: timed out waiting for '$regex' in $file" >&2
  cat "$file" >&2
  exit 1
}

token=demo-$RANDOM$RANDOM
mkdir -p "$work/shared"
echo "hello from machine A" >"$work/shared/hello.txt"

"$relay_bin" --listen 127.0.0.1:0 --token "$token" >"$work/relay.log" 2>&1 &
pids+=($!)
wait_for "$work/relay.log" 'listening'
relay=$(grep -oE 'ws://[^/]+' "$work/relay.log" | head -1 | sed 's|ws://||')
echo "== relay: $(grep listening "$work/relay.log")"

echo "== machine A: peertun p2p $work/shared --relay $relay --token ..."
"$peertun_bin" --relay "$relay" --token "$token" p2p "$work/shared" >"$work/a.log" 2>&1 &
pids+=($!)
wait_for "$work/a.log" 'Join code'
code=$(grep -oE 'pt-p2p-[0-9A-Z-]+' "$work/a.log" | head -1)

echo "== machine B: peertun p2p-join $code --relay $relay --token ..."
"$peertun_bin" --relay "$relay" --token "$token" p2p-join "$code" >"$work/b.log" 2>&1 &
pids+=($!)
wait_for "$work/b.log" 'QUIC: connected'
wait_for "$work/a.log" 'QUIC: connected'
echo "-- B says:"; sed 's/^/   /' "$work/b.log"
echo "-- A says:"; sed 's/^/   /' "$work/a.log"
echo "== done: the relay saw only sealed signalling; stopping everything."

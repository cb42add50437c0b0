#!/usr/bin/env bash
# `make demo`: a relay and two peers on this machine's loopback. Peer A shares a
# folder, peer B joins with the join code; both learn their public address by STUN,
# run the PAKE through the relay and exchange addresses in the sealed channel.
# (Hole punching, QUIC and the FUSE mount arrive with issues 3-5; this shows what
# exists today.) Everything started here is stopped by PID on exit.
set -euo pipefail
build=${1:-build/release}
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
wait_for "$work/b.log" 'Peer A is at'
wait_for "$work/a.log" 'Peer B is at'
echo "-- B says:"; sed 's/^/   /' "$work/b.log"
echo "-- A says:"; sed 's/^/   /' "$work/a.log"
echo "== done: the relay saw only sealed signalling; stopping everything."

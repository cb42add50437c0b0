#!/usr/bin/env bash
# `make demo`: a relay and two peers. As root, in the NAT lab (network namespaces with
# real NATs: scripts/demo_lab.py); otherwise on this machine's loopback. Peer A shares
# a folder, peer B joins with the join code; both learn their public address and NAT
# behaviour by STUN, run the PAKE through the relay, exchange candidates in the sealed
# channel, punch a direct UDP path and connect QUIC over it; B mounts A's folder with
# FUSE at /tmp/p2p-<code> and the demo lists it. Everything started here is stopped by
# PID on exit (B unmounts on SIGTERM).
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
mkdir -p "$work/shared/photos"
echo "hello from machine A" >"$work/shared/hello.txt"
head -c 3000000 /dev/urandom >"$work/shared/photos/beach.jpg"
ln -s hello.txt "$work/shared/greeting"

"$relay_bin" --listen 127.0.0.1:0 --token "$token" >"$work/relay.log" 2>&1 &
pids+=($!)
wait_for "$work/relay.log" 'listening'
relay=$(grep -oE 'ws://[^/]+' "$work/relay.log" | head -1 | sed 's|ws://||')
echo "== relay: $(grep listening "$work/relay.log")"

peertun_bin=$(realpath "$peertun_bin")
echo "== machine A, in $work: peertun p2p ./shared --relay $relay --token ..."
(cd "$work" && exec "$peertun_bin" --relay "$relay" --token "$token" p2p ./shared) >"$work/a.log" 2>&1 &
pids+=($!)
wait_for "$work/a.log" 'Join code'
code=$(grep -oE 'pt-p2p-[0-9A-Z-]+' "$work/a.log" | head -1)

echo "== machine B: peertun p2p-join $code --relay $relay --token ..."
"$peertun_bin" --relay "$relay" --token "$token" p2p-join "$code" >"$work/b.log" 2>&1 &
pids+=($!)
wait_for "$work/b.log" 'Mounted|cannot mount'
wait_for "$work/a.log" 'Sharing'
echo "-- B says:"; sed 's/^/   /' "$work/b.log"
echo "-- A says:"; sed 's/^/   /' "$work/a.log"
mnt=$(grep -oE 'at /[^ ]+$' "$work/b.log" | head -1 | cut -c4-)
if [[ -n $mnt ]]; then
  echo "== on machine B: ls -lR $mnt"
  ls -lR "$mnt" | sed 's/^/   /'
  echo "== on machine B: cat $mnt/greeting"
  sed 's/^/   /' "$mnt/greeting"
  echo "== on machine B: sha256sum of beach.jpg on A and through the mount"
  sha256sum "$work/shared/photos/beach.jpg" "$mnt/photos/beach.jpg" | sed 's/^/   /'
fi
echo "== done: the relay saw only sealed signalling; stopping everything (B unmounts)."

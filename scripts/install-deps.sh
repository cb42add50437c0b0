#!/usr/bin/env bash
# Installs every Debian 12 package that peertun's build, tests, demo and benches use.
# Idempotent: packages already present are not touched, and apt is not even called
# when nothing is missing (so `make test` stays fast on a prepared machine).
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config git
  clang-19 libclang-rt-19-dev clang-format-19 clang-tidy-19
  # libraries
  libboost1.81-dev libboost-json1.81-dev
  libngtcp2-dev libngtcp2-crypto-gnutls-dev libgnutls28-dev
  libsodium-dev libfuse3-dev fuse3
  libtomlplusplus-dev libcli11-dev libspdlog-dev libfmt-dev libsqlite3-dev
  libgtest-dev libgmock-dev libbenchmark-dev librapidcheck-dev
  libnetfilter-queue-dev
  # certtool: test certificates for wss (tests/integration/test_tls.py, docs/relay.md)
  gnutls-bin
  # interop references, benches and the NAT lab
  coturn iperf3 sshfs openssh-server openssh-client
  iproute2 nftables conntrack procps psmisc util-linux python3 curl
  # the NAT lab's delay line is fed by the xtables NFQUEUE target (no nft `queue` here)
  iptables
  # profiles of the data path (bench/quic_throughput.py --perf)
  linux-perf
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing packages: ${missing[*]}; run as root (or install them yourself)" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# coturn's package enables a system service on some setups; we only use its binaries.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet coturn 2>/dev/null; then
  systemctl disable --now coturn >/dev/null 2>&1 || true
fi
echo "install-deps: done"

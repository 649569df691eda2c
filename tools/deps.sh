#!/usr/bin/env bash
# Install the Debian packages nlgate builds and tests with, if any are missing.
set -euo pipefail
pkgs=(build-essential cmake pkg-config liblua5.4-dev lua5.4 libmnl-dev
      libnetfilter-conntrack-dev libmsgpack-dev libcap-ng-dev lua-busted libcmocka-dev
      python3-msgpack iproute2 conntrack nftables netsniff-ng clang
      libpcap-dev tcpdump tshark libnats-dev nats-server libssl-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

#!/usr/bin/env bash
# Install the Debian packages a real node needs on the host (hack/localkube/node.go, operator/devnode.py): runc,
# the CNI plugins, the netfilter and iproute tools that kube-proxy and the CNI plugins run, and mmdebstrap (the
# Python images' Debian base, operator/devimages.py). Does nothing when
# they are all present; needs root and apt-get otherwise.
set -euo pipefail
packages=(iptables nftables conntrack runc containernetworking-plugins ipset ethtool iproute2 mmdebstrap)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "a real node needs Debian's packages: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "installed ${missing[*]}"

#!/usr/bin/env bash
# Make a promtool binary available and print its absolute path on stdout (progress goes to stderr).
# `hack/promtool.sh prometheus` does the same for the Prometheus server (the canary metric-gate test runs one).
#
# Why this script: the alert rules in charts/plinth/files/alerts/ are checked and unit-tested with
# `promtool check rules` / `promtool test rules`, and CI runs on a fresh machine with no promtool installed.
#
# Order of preference:
#   1. $PROMTOOL, if set (an explicit choice wins; it must run).
#   2. The cached binary in ${PLINTH_CACHE_DIR:-~/.cache/plinth}/promtool/bin/promtool.
#   3. Debian's `prometheus` package: `apt-get download` + `dpkg-deb -x`, no root needed (~19 MB, a few seconds).
#      If the machine's apt lists are missing or stale, a private `apt-get update` into the cache dir is done first
#      (also without root), using the machine's configured Debian sources.
#   4. Without apt-get/dpkg-deb: `go install` of promtool from the Go module proxy (slow: 8-13 min on 2 cores).
set -euo pipefail

GO_VERSION="${PLINTH_PROMTOOL_GO_VERSION:-v0.316.0}"  # Go module version of github.com/prometheus/prometheus
tool="${1:-promtool}"
case "$tool" in promtool|prometheus) ;; *) echo "usage: $0 [promtool|prometheus]" >&2; exit 2 ;; esac
cache="${PLINTH_CACHE_DIR:-$HOME/.cache/plinth}/promtool"
target="$cache/bin/$tool"

say() { echo "promtool.sh: $*" >&2; }
runs() { [[ -x "$1" ]] && "$1" --version >/dev/null 2>&1; }

if [[ "$tool" == promtool && -n "${PROMTOOL:-}" ]]; then
  runs "$PROMTOOL" || { say "\$PROMTOOL=$PROMTOOL does not run"; exit 1; }
  echo "$PROMTOOL"
  exit 0
fi
if runs "$target"; then
  echo "$target"
  exit 0
fi

mkdir -p "$cache/bin"
work="$(mktemp -d "$cache/work.XXXXXX")"
trap 'rm -rf "$work"' EXIT

from_debian() {
  command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || return 1
  local apt_opts=(-o "APT::Sandbox::User=$(id -un)")
  say "downloading Debian's prometheus package"
  if ! (cd "$work" && apt-get "${apt_opts[@]}" -qq download prometheus >&2 2>/dev/null); then
    # No apt lists on this machine (a fresh container) or stale ones: fetch private lists, no root needed.
    say "apt lists missing or stale; fetching private lists into $work/apt"
    mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial"
    apt_opts+=(-o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache" -o "Debug::NoLocking=1")
    apt-get "${apt_opts[@]}" -qq update >&2 || return 1
    (cd "$work" && apt-get "${apt_opts[@]}" -qq download prometheus >&2) || return 1
  fi
  local deb
  deb="$(ls "$work"/prometheus_*.deb 2>/dev/null | head -n1)"
  [[ -n "$deb" ]] || return 1
  dpkg-deb -x "$deb" "$work/root" || return 1
  [[ -x "$work/root/usr/bin/$tool" ]] || return 1
  mv "$work/root/usr/bin/$tool" "$work/$tool"
}

from_go_proxy() {
  command -v go >/dev/null || return 1
  say "building $tool $GO_VERSION with go install (this takes several minutes)"
  GOBIN="$work/gobin" GOFLAGS=-buildvcs=false go install "github.com/prometheus/prometheus/cmd/$tool@$GO_VERSION" >&2 \
    || return 1
  mv "$work/gobin/$tool" "$work/$tool"
}

if ! from_debian && ! from_go_proxy; then
  say "could not obtain $tool (tried Debian's prometheus package and go install); set PROMTOOL=/path/to/promtool"
  exit 1
fi
runs "$work/$tool" || { say "the obtained $tool does not run"; exit 1; }
# Rename is atomic: a concurrent run sees either no binary or a complete one.
mv -f "$work/$tool" "$target"
say "installed $("$target" --version 2>&1 | head -n1)"
echo "$target"

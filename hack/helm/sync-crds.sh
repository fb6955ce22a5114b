#!/usr/bin/env bash
# Copy the generated CRDs (crds/*.yaml, from `plinth crds`) into the chart (charts/plinth/files/crds/), which Helm
# cannot read outside its own folder. Run after `make crds`; tests/e2e/test_chart.py fails when the copies differ.
#   hack/helm/sync-crds.sh           copy
#   hack/helm/sync-crds.sh --check   exit 1 and name the files that are out of sync
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
src=$root/crds dst=$root/charts/plinth/files/crds
check=false
[ "${1:-}" = "--check" ] && check=true

stale=()
for f in "$src"/*.yaml; do
  name=$(basename "$f")
  [ "$name" = kustomization.yaml ] && continue
  cmp -s "$f" "$dst/$name" || stale+=("$name")
done
for f in "$dst"/*.yaml; do
  [ -e "$f" ] || continue
  [ -e "$src/$(basename "$f")" ] || stale+=("$(basename "$f") (no longer in crds/)")
done

if $check; then
  [ ${#stale[@]} -eq 0 ] && exit 0
  printf 'charts/plinth/files/crds is out of sync with crds/: %s\nrun hack/helm/sync-crds.sh\n' "${stale[*]}" >&2
  exit 1
fi
mkdir -p "$dst"
find "$dst" -name '*.yaml' -delete
for f in "$src"/*.yaml; do
  [ "$(basename "$f")" = kustomization.yaml ] || cp "$f" "$dst/"
done
echo "synced ${#stale[@]} changed file(s) into ${dst#"$root"/}"

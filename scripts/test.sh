#!/usr/bin/env bash
# The whole test suite: formatting, vet, every test with the race detector,
# and a short run of each fuzz target. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...
go vet -tags nodev ./ingress   # the container image's build (deploy/Dockerfile)

echo "== go test -race"
go test -race -count=1 -timeout 10m ./...

echo "== fuzz (briefly)"
# A count of inputs, not a duration: Go 1.26's fuzzing coordinator can fail
# a duration-bounded run with a bare "context deadline exceeded" (no
# crasher) when the machine is loaded (golang/go#75804, fixed in Go 1.27).
fuzztime=${FUZZTIME:-100000x}
go test ./contracts -run '^$' -fuzz '^FuzzDecodeCallRequest$' -fuzztime "$fuzztime"
go test ./contracts -run '^$' -fuzz '^FuzzOpen$' -fuzztime "$fuzztime"
go test ./contracts -run '^$' -fuzz '^FuzzWireHeader$' -fuzztime "$fuzztime"

# Deployment files (docker-compose.yml, deploy/k8s, deploy/Dockerfile):
# validated by their own module, deploy/validate (compose-go, kustomize,
# k8s.io/api, KEDA's CRD; see its doc.go).
echo "== deploy/validate"
(cd deploy/validate && go vet ./... && go test -count=1 -timeout 10m ./...)

# The MCP conformance suite (installs Node 22 and the suite into a cache
# directory on first use): in CI, or when asked for.
if [ "${CI:-}" = "true" ] || [ "${CONFORMANCE:-}" = "1" ]; then
  echo "== MCP conformance"
  bash scripts/conformance.sh
fi

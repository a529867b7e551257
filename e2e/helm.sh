#!/usr/bin/env bash
# The real `helm` command line, built from the helm.sh/helm Go module, for the tests in tests/real
# that show a release `helm upgrade` refuses before `k8s-upgrade helm-fix` and accepts after.
#
#   e2e/helm.sh build     build (or reuse) helm; print the binary's path
#   e2e/helm.sh status    print the binary's path if built, else fail
#
# Cached by version beside the control plane's binaries, under
# ${K8S_UPGRADE_E2E_CACHE:-${XDG_CACHE_HOME:-~/.cache}/k8s-upgrade/e2e}/helm-VERSION.
set -euo pipefail
shopt -s inherit_errexit

CACHE="${K8S_UPGRADE_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/k8s-upgrade/e2e}"
HELM_VERSION="v4.3.2"
BIN="$CACHE/helm-$HELM_VERSION"

die() {
	echo "helm.sh: $*" >&2
	exit 1
}

cmd_build() {
	if [[ ! -x "$BIN/helm" ]]; then
		command -v go >/dev/null || die "Go is needed to build helm (go.dev); none is on PATH"
		echo "helm.sh: building helm $HELM_VERSION into $BIN" >&2
		rm -rf "$BIN.tmp"
		mkdir -p "$BIN.tmp"
		GOBIN="$BIN.tmp" GOFLAGS="-buildvcs=false" go install -trimpath -ldflags "-s -w" \
			"helm.sh/helm/v4/cmd/helm@$HELM_VERSION" ||
			die "building helm $HELM_VERSION failed (see the go output above); nothing was cached"
		rm -rf "$BIN"
		mv "$BIN.tmp" "$BIN"
	fi
	echo "$BIN/helm"
}

cmd_status() {
	[[ -x "$BIN/helm" ]] || die "helm $HELM_VERSION is not built; run: e2e/helm.sh build"
	echo "$BIN/helm"
}

case "${1:-}" in
	build) cmd_build ;;
	status) cmd_status ;;
	*) die "usage: helm.sh build | status" ;;
esac

#!/usr/bin/env bash
# The real `krew` (kubectl's plugin manager) and krew-index's `validate-krew-manifest`, built from
# the sigs.k8s.io/krew Go module, for the test that validates our plugin manifest (.krew.yaml) and
# installs k8s-upgrade from it the way users will.
#
#   e2e/krew.sh build     build (or reuse) both; print krew's path (validate-krew-manifest beside it)
#   e2e/krew.sh status    print the binary's path if built, else fail
#
# Cached by version beside the control plane's binaries, under
# ${K8S_UPGRADE_E2E_CACHE:-${XDG_CACHE_HOME:-~/.cache}/k8s-upgrade/e2e}/krew-VERSION.
set -euo pipefail
shopt -s inherit_errexit

CACHE="${K8S_UPGRADE_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/k8s-upgrade/e2e}"
KREW_VERSION="v0.4.3"
BIN="$CACHE/krew-$KREW_VERSION"

die() {
	echo "krew.sh: $*" >&2
	exit 1
}

cmd_build() {
	if [[ ! -x "$BIN/krew" || ! -x "$BIN/validate-krew-manifest" ]]; then
		command -v go >/dev/null || die "Go is needed to build krew (go.dev); none is on PATH"
		echo "krew.sh: building krew $KREW_VERSION into $BIN" >&2
		rm -rf "$BIN.tmp"
		mkdir -p "$BIN.tmp"
		GOBIN="$BIN.tmp" GOFLAGS="-buildvcs=false" go install -trimpath -ldflags "-s -w" \
			"sigs.k8s.io/krew/cmd/krew@$KREW_VERSION" "sigs.k8s.io/krew/cmd/validate-krew-manifest@$KREW_VERSION" ||
			die "building krew $KREW_VERSION failed (see the go output above); nothing was cached"
		rm -rf "$BIN"
		mv "$BIN.tmp" "$BIN"
	fi
	echo "$BIN/krew"
}

cmd_status() {
	[[ -x "$BIN/krew" && -x "$BIN/validate-krew-manifest" ]] || die "krew $KREW_VERSION is not built; run: e2e/krew.sh build"
	echo "$BIN/krew"
}

case "${1:-}" in
	build) cmd_build ;;
	status) cmd_status ;;
	*) die "usage: krew.sh build | status" ;;
esac

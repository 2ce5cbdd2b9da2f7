#!/usr/bin/env bash
# Installs the external tools the tests use, at pinned versions, into
# ./bin/tools (override with TOOLS_BIN). Idempotent: a tool already at its
# pinned version is left alone.
#
#   scripts/install-tools.sh            # every tool
#   scripts/install-tools.sh conformance  # only the named ones
#
# Each tool is one install_<name> function listed in TOOLS. Outside CI a
# failed install only warns (the tests that need the tool then skip, naming
# this script); with CI=true it fails.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS_BIN="${TOOLS_BIN:-$PWD/bin/tools}"
GO="${GO:-go}"
TOOLS=(conformance)

# OCI distribution-spec conformance suite (binary "conformance").
CONFORMANCE_MOD=github.com/opencontainers/distribution-spec/conformance
CONFORMANCE_VERSION=v0.0.0-20260831232431-97274622c111

# go_tool_version prints the main module version a Go binary was built from.
go_tool_version() {
	"$GO" version -m "$1" 2>/dev/null | awk '$1 == "mod" { print $3; exit }'
}

# go_install MODULE VERSION BINARY installs MODULE@VERSION unless BINARY
# in TOOLS_BIN already is that version.
go_install() {
	local mod="$1" version="$2" bin="$TOOLS_BIN/$3"
	if [[ -x "$bin" && "$(go_tool_version "$bin")" == "$version" ]]; then
		echo "install-tools: $3 $version already installed ($bin)"
		return 0
	fi
	mkdir -p "$TOOLS_BIN"
	echo "install-tools: installing $mod@$version into $TOOLS_BIN"
	GOBIN="$TOOLS_BIN" "$GO" install "$mod@$version"
}

install_conformance() {
	go_install "$CONFORMANCE_MOD" "$CONFORMANCE_VERSION" conformance
}

main() {
	local want=("$@") failed=()
	if [[ ${#want[@]} -eq 0 ]]; then
		want=("${TOOLS[@]}")
	fi
	for t in "${want[@]}"; do
		if ! declare -F "install_$t" >/dev/null; then
			echo "install-tools: unknown tool $t (known: ${TOOLS[*]})" >&2
			exit 2
		fi
		if ! "install_$t"; then
			failed+=("$t")
		fi
	done
	if [[ ${#failed[@]} -gt 0 ]]; then
		echo "install-tools: failed to install: ${failed[*]}" >&2
		if [[ "${CI:-}" == "true" ]]; then
			exit 1
		fi
		echo "install-tools: continuing (CI is not true); tests needing them will skip" >&2
	fi
}

main "$@"

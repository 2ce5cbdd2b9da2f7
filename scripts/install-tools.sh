#!/usr/bin/env bash
# Installs the external tools the tests use. Go tools are built at pinned
# versions into ./bin/tools (override with TOOLS_BIN); containerd, skopeo and
# iproute2 come from the distribution's packages (apt-get, needs root);
# Azurite (the Azure Storage emulator) is an npm package installed at a
# pinned version into ./bin/tools/azurite, with node and npm from the
# distribution's packages when they are missing.
# Idempotent: a Go tool or npm package already at its pinned version, or a
# package whose binary is already on PATH, is left alone.
#
#   scripts/install-tools.sh            # every tool
#   scripts/install-tools.sh conformance  # only the named ones
#   (tools: conformance crane oras containerd containerd2 skopeo ip azurite)
#
# Each tool is one install_<name> function listed in TOOLS. Outside CI a
# failed install only warns (the tests that need the tool then skip, naming
# this script); with CI=true it fails.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS_BIN="${TOOLS_BIN:-$PWD/bin/tools}"
GO="${GO:-go}"
TOOLS=(conformance crane oras containerd containerd2 skopeo ip azurite)

# OCI distribution-spec conformance suite (binary "conformance").
CONFORMANCE_MOD=github.com/opencontainers/distribution-spec/conformance
CONFORMANCE_VERSION=v0.0.0-20260831232431-97274622c111

# go_tool_version prints the main module version a Go binary was built from.
go_tool_version() {
	"$GO" version -m "$1" 2>/dev/null | awk '$1 == "mod" { print $3; exit }'
}

# go_install MODULE VERSION BINARY [GO INSTALL FLAGS...] installs
# MODULE@VERSION unless BINARY (a path relative to TOOLS_BIN) already is that
# version; the binary goes into BINARY's directory.
go_install() {
	local mod="$1" version="$2" bin="$TOOLS_BIN/$3"
	shift 3
	if [[ -x "$bin" && "$(go_tool_version "$bin")" == "$version" ]]; then
		echo "install-tools: $(basename "$bin") $version already installed ($bin)"
		return 0
	fi
	local dir
	dir="$(dirname "$bin")"
	mkdir -p "$dir"
	echo "install-tools: installing $mod@$version into $dir"
	GOBIN="$dir" "$GO" install "$@" "$mod@$version"
}

# crane and oras, the registry clients of the e2e suite (cmd/airlock/e2e).
CRANE_MOD=github.com/google/go-containerregistry/cmd/crane
CRANE_VERSION=v0.22.1
ORAS_MOD=oras.land/oras/cmd/oras
ORAS_VERSION=v1.3.6

install_conformance() {
	go_install "$CONFORMANCE_MOD" "$CONFORMANCE_VERSION" conformance
}

install_crane() {
	go_install "$CRANE_MOD" "$CRANE_VERSION" crane
}

install_oras() {
	go_install "$ORAS_MOD" "$ORAS_VERSION" oras
}

# apt_install BINARY PACKAGE... installs the Debian packages unless BINARY is
# already on PATH. apt-get update runs once per invocation of this script.
APT_UPDATED=
apt_install() {
	local bin="$1"
	shift
	if command -v "$bin" >/dev/null 2>&1; then
		echo "install-tools: $bin already installed ($(command -v "$bin"))"
		return 0
	fi
	if [[ "$(id -u)" != 0 ]]; then
		echo "install-tools: $bin is missing and installing $* needs root (apt-get)" >&2
		return 1
	fi
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "install-tools: $bin is missing and there is no apt-get to install $*" >&2
		return 1
	fi
	if [[ -z "$APT_UPDATED" ]]; then
		echo "install-tools: apt-get update"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq || return 1
		APT_UPDATED=1
	fi
	echo "install-tools: apt-get install $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" || return 1
	command -v "$bin" >/dev/null 2>&1
}

# containerd (and ctr), run by the e2e suite as root with its own root and
# socket; the CRI plugin is disabled, so no runc or CNI is needed to pull.
install_containerd() {
	apt_install containerd containerd && apt_install ctr containerd
}

# containerd 2.x (containerd and ctr), what AKS 1.33+ nodes run, built from
# source (about 5 minutes without a warm Go build cache) into
# TOOLS_BIN/containerd2. The build tags leave out the snapshotters that need
# C libraries or kernel features the tests do not use.
CONTAINERD2_MOD=github.com/containerd/containerd/v2/cmd
CONTAINERD2_VERSION=v2.4.2
CONTAINERD2_TAGS="no_btrfs no_devmapper no_zfs no_aufs"

install_containerd2() {
	go_install "$CONTAINERD2_MOD/containerd" "$CONTAINERD2_VERSION" containerd2/containerd -tags "$CONTAINERD2_TAGS" &&
		go_install "$CONTAINERD2_MOD/ctr" "$CONTAINERD2_VERSION" containerd2/ctr -tags "$CONTAINERD2_TAGS"
}

install_skopeo() {
	apt_install skopeo skopeo
}

# ip (iproute2): network namespaces and veth pairs for the zero-egress test.
install_ip() {
	apt_install ip iproute2
}

# Azurite's blob service (azurite-blob), which the Azure storage tests start
# on a free loopback port (internal/azuritetest). 3.35.0 is the newest
# release for node 20, the machines' Node.js (3.36 and later need node 21+);
# where node is missing it comes from the distribution's packages.
AZURITE_VERSION=3.35.0
AZURITE_PREFIX="$TOOLS_BIN/azurite"

# npm_package_version PREFIX NAME prints the version of an npm package
# installed under PREFIX, or nothing.
npm_package_version() {
	local pkg="$1/node_modules/$2/package.json"
	[[ -f "$pkg" ]] || return 0
	node -e 'process.stdout.write(require(process.argv[1]).version)' "$pkg" 2>/dev/null || true
}

install_azurite() {
	apt_install node nodejs || return 1
	apt_install npm npm || return 1
	if [[ -x "$AZURITE_PREFIX/node_modules/.bin/azurite-blob" &&
		"$(npm_package_version "$AZURITE_PREFIX" azurite)" == "$AZURITE_VERSION" ]]; then
		echo "install-tools: azurite $AZURITE_VERSION already installed ($AZURITE_PREFIX)"
		return 0
	fi
	mkdir -p "$AZURITE_PREFIX"
	echo "install-tools: installing azurite@$AZURITE_VERSION into $AZURITE_PREFIX"
	npm install --prefix "$AZURITE_PREFIX" --no-audit --no-fund --omit=dev \
		--save-exact "azurite@$AZURITE_VERSION"
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

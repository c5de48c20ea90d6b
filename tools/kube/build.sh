#!/usr/bin/env bash
# Builds kube-apiserver and kubectl v1.37.2 and etcd v3.7.3 from the Go module
# proxy. The integration tests (package kube/kubetest) start kube-apiserver and
# etcd on loopback, and kubectl is the client for that local API server (see
# docs/cluster.md).
#
# The binaries go to a cache directory outside the repository:
#   ${WFEVENTS_KUBE_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/wfevents/kube-v1.37.2-etcd-v3.7.3}
# A binary that exists there and reports the expected version is not built
# again, so a run with all three in place builds nothing. Progress goes to
# stderr and the directory is printed on the last line of stdout, so a caller
# can run: dir=$(tools/kube/build.sh | tail -n 1)
#
# A cold build takes minutes (kube-apiserver is most of it). Each binary is
# built into a temporary directory next to the cache directory and then
# renamed into place, so an interrupted build never leaves a half-written
# binary that a later run would take as valid.
set -euo pipefail

readonly kube_version=v1.37.2
readonly etcd_version=3.7.3

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
bin_dir=${WFEVENTS_KUBE_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/wfevents/kube-${kube_version}-etcd-v${etcd_version}}

log() {
	printf 'build.sh: %s\n' "$*" >&2
}

# The *_valid functions succeed when the binary in directory $1 runs and
# prints the pinned version, which also catches a WFEVENTS_KUBE_BIN that
# points at other builds.
kube_apiserver_valid() {
	local dir=$1 out
	[[ -x $dir/kube-apiserver ]] || return 1
	out=$("$dir/kube-apiserver" --version 2>&1) || return 1
	[[ $out == "Kubernetes ${kube_version}" ]] || { log "$dir/kube-apiserver --version printed '$out', expected 'Kubernetes ${kube_version}'"; return 1; }
}

kubectl_valid() {
	local dir=$1 out
	[[ -x $dir/kubectl ]] || return 1
	# --client keeps kubectl from contacting a server, whatever KUBECONFIG
	# points at.
	out=$(KUBECONFIG=/dev/null "$dir/kubectl" version --client 2>&1) || return 1
	[[ $out == "Client Version: ${kube_version}"* ]] || { log "$dir/kubectl version --client printed '${out%%$'\n'*}', expected 'Client Version: ${kube_version}'"; return 1; }
}

etcd_valid() {
	local dir=$1 out
	[[ -x $dir/etcd ]] || return 1
	out=$("$dir/etcd" --version 2>&1) || return 1
	[[ $out == *"etcd Version: ${etcd_version}"* ]] || { log "$dir/etcd --version printed '${out%%$'\n'*}', expected 'etcd Version: ${etcd_version}'"; return 1; }
}

# The binaries that are missing or report another version, in build order.
missing=()
for name in kube-apiserver kubectl etcd; do
	"${name//-/_}_valid" "$bin_dir" || missing+=("$name")
done
if ((${#missing[@]} == 0)); then
	printf '%s\n' "$bin_dir"
	exit 0
fi

command -v go >/dev/null || { log "go not found in PATH; install Go 1.26 or later"; exit 1; }

mkdir -p -- "$bin_dir"
tmp_dir=$(mktemp -d -- "${bin_dir}.tmp.XXXXXX")
trap 'rm -rf -- "$tmp_dir"' EXIT

# The tools modules are outside the main module, and a go.work elsewhere must
# not pull them in. -mod=readonly fails instead of editing the pinned go.sum.
export GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0

# Release builds of Kubernetes stamp the version through these variables.
# Without them kube-apiserver reports v0.0.0-master.
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
kube_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	kube_ldflags+=" -X ${pkg}.gitVersion=${kube_version}"
	kube_ldflags+=" -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=37"
	kube_ldflags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=${build_date}"
done

# build_kube builds the command k8s.io/kubernetes/cmd/$1 of the apiserver
# tools module into tmp_dir.
build_kube() {
	local name=$1 start=$SECONDS
	log "building $name ${kube_version} into $bin_dir"
	(cd -- "$script_dir/apiserver" && go build -trimpath -ldflags "$kube_ldflags" -o "$tmp_dir/$name" "k8s.io/kubernetes/cmd/$name")
	log "built $name in $((SECONDS - start)) s"
}

build_etcd() {
	local start=$SECONDS
	log "building etcd v${etcd_version} into $bin_dir"
	(cd -- "$script_dir/etcd" && go build -trimpath -ldflags "-s -w" -o "$tmp_dir/etcd" .)
	log "built etcd in $((SECONDS - start)) s"
}

log "missing or outdated in $bin_dir: ${missing[*]} (kube-apiserver takes minutes on a cold build cache)"
for name in "${missing[@]}"; do
	case $name in
	etcd) build_etcd ;;
	*) build_kube "$name" ;;
	esac
done

for name in "${missing[@]}"; do
	"${name//-/_}_valid" "$tmp_dir" || { log "the new $name in $tmp_dir failed the version check"; exit 1; }
done

# rename(2) within one file system is atomic, and tmp_dir sits beside bin_dir.
for name in "${missing[@]}"; do
	mv -f -- "$tmp_dir/$name" "$bin_dir/$name"
done

printf '%s\n' "$bin_dir"

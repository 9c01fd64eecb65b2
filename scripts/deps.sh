#!/usr/bin/env bash
# make deps: install the Debian packages Weft's runtimes and tests need, the
# ones not already there (so running it again does nothing). .ci/run calls it
# too: this is the one list.
set -euo pipefail

need=()
command -v runc >/dev/null 2>&1 || need+=(runc)                                  # the container runtime
command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)         # the vm runtime
command -v qemu-img >/dev/null 2>&1 || need+=(qemu-utils)                        # overlays, qemu-io for NBD tests
[ -x /bin/busybox ] && ldd /bin/busybox >/dev/null 2>&1 && need+=(busybox-static) # a static busybox for images
command -v busybox >/dev/null 2>&1 || need+=(busybox-static)
command -v mkfs.ext4 >/dev/null 2>&1 || need+=(e2fsprogs)                        # VM image root disks
# What the tests need besides.
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v iptables >/dev/null 2>&1 || need+=(iptables) # partitions in the multi-host harness
command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev) # the race detector uses cgo
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v chromium >/dev/null 2>&1 || need+=(chromium) # the portal's browser tests (e2e, chromedp)
command -v python3 >/dev/null 2>&1 || need+=(python3-minimal) # the README's first service (e2e)

# The JavaScript Azure SDK, for the storage conformance checks of what the Go
# SDK does not expose (internal/storage/conformance TestBlob_JavaScriptSDK,
# which skips without it): from npm into a cache folder, when npm exists.
js="${XDG_CACHE_HOME:-$HOME/.cache}/weft-tools/azure-js"
if command -v npm >/dev/null 2>&1 && [ ! -d "$js/node_modules/@azure/storage-blob" ]; then
  mkdir -p "$js"
  npm install --prefix "$js" --no-audit --no-fund @azure/storage-blob@12.32.0 >/dev/null 2>&1 ||
    echo "deps: npm install @azure/storage-blob failed; its conformance checks will skip" >&2
fi

if [ ${#need[@]} -eq 0 ]; then
  echo "deps: every Debian package is installed"
else
  # busybox-static may be named twice above; apt-get takes it once.
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  echo "deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# rclone, a real Azure Blob client for the e2e tests (e2e/rclone_test.go
# looks for it here), built once from the Go module proxy: Debian's is too
# old to take a storage endpoint of our own.
rclone_version=v1.68.2
rclone_dir="${XDG_CACHE_HOME:-$HOME/.cache}/weft-tools/rclone-$rclone_version"
if [ ! -x "$rclone_dir/rclone" ]; then
  echo "deps: building rclone $rclone_version (once; a few minutes)"
  (cd "$(mktemp -d)" && GOBIN="$rclone_dir" GOFLAGS=-mod=mod CGO_ENABLED=0 "${GO:-go}" install "github.com/rclone/rclone@$rclone_version")
fi

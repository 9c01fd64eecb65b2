#!/usr/bin/env bash
# make fuzz: runs every fuzz target (func FuzzXxx in a _test.go file) of the
# given packages (default: all) for FUZZTIME each (default 30s), one at a
# time, since each already uses every core. Targets are found with
# `go test -list`, so a new one needs no change here. A failing input is
# written by go test to the package's testdata/fuzz/FuzzXxx/: fix the bug and
# commit the file, which every `go test` then runs as a regression seed.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-30s}
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(./...)

# go test -list prints a package's matching tests, then "ok  <package> ...".
targets=$("$GO" test -list '^Fuzz' "${pkgs[@]}" | awk '
	/^Fuzz/ { names[++n] = $1; next }
	/^ok/   { for (i = 1; i <= n; i++) print $2, names[i]; n = 0 }')
if [ -z "$targets" ]; then
	echo "no fuzz targets in ${pkgs[*]}"
	exit 0
fi

failed=()
while read -r pkg name; do
	echo "== $name ($pkg, $FUZZTIME)"
	if ! "$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg"; then
		failed+=("$pkg $name")
	fi
done <<< "$targets"

if [ ${#failed[@]} -gt 0 ]; then
	printf 'fuzz: failed: %s\n' "${failed[@]}"
	exit 1
fi

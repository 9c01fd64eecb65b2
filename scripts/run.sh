#!/usr/bin/env bash
# make run: start the whole cloud on this machine (`weft dev`), deploy the
# hello example, print a tour, and keep running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

WEFT=${WEFT:-bin/weft}
ADDR=http://127.0.0.1:7070

CGO_ENABLED=0 go build -o examples/hello/package/hello ./examples/hello

mkdir -p .weft
echo "starting weft dev (log: .weft/dev.log)"
"$WEFT" dev >.weft/dev.log 2>&1 &
DEV=$!
SEEN=0 # lines of its log already shown

stop() {
	echo
	echo "stopping weft dev"
	kill -TERM "$DEV" 2>/dev/null || true
	# What it stops, as it goes: its lines for the terminal, from its log.
	tail -n +"$((SEEN + 1))" -s 0.1 --pid="$DEV" -f .weft/dev.log 2>/dev/null | grep --line-buffered '^weft dev: ' || true
	wait "$DEV" 2>/dev/null || true
	exit "${1:-0}"
}
trap 'stop 0' INT TERM

# weft dev prints where its API is once its nodes have registered: a deploy
# before that would put every instance on whichever node came first.
for _ in $(seq 1 300); do
	if grep -q '^weft dev: API ' .weft/dev.log; then
		break
	fi
	if ! kill -0 "$DEV" 2>/dev/null; then
		echo "weft dev exited; its log:" >&2
		tail -n 20 .weft/dev.log >&2
		exit 1
	fi
	sleep 0.1
done
grep -q '^weft dev: API ' .weft/dev.log || { echo "weft dev's nodes are not ready after 30 s; see .weft/dev.log" >&2; stop 1; }
SEEN=$(wc -l <.weft/dev.log)
# weft status uses the admin token weft dev keeps for this user.
"$WEFT" status >/dev/null || { echo "weft dev did not answer on $ADDR" >&2; stop 1; }

"$WEFT" deploy -f examples/hello/service.yaml --wait || { echo "deploy failed; see .weft/dev.log" >&2; stop 1; }

echo
curl -fsS http://127.0.0.1:8080/ || true
echo
"$WEFT" instances
echo
"$WEFT" nodes
# The runtimes this host cannot offer, and why (weft dev says so on its terminal, here its log).
grep '^weft dev: no ' .weft/dev.log >&2 || true

cat <<'TOUR'

Weft is running: a controller, storage and three nodes (weft dev), with the
hello service deployed. In another terminal:

  curl http://127.0.0.1:8080/               # load-balanced over the healthy web instances
  bin/weft instances                         # where each instance runs, its state and health
  bin/weft nodes                             # the nodes, their fault domains and capacity
  bin/weft events -f                         # what the fabric does, as it happens

  # kill a web instance's process and watch the fabric restart it (RESTARTS, LAST ERROR):
  ID=$(bin/weft instances hello | awk '$3 == "web" {print $1; exit}')
  pkill -9 -P "$(pgrep -f "weft shim .*/instances/$ID\$")"; sleep 2; bin/weft instances hello

  bin/weft scale hello web 5 --wait          # more instances, spread over fault domains
  # edit GREETING in examples/hello/service.yaml, see what would change, then a rolling upgrade:
  bin/weft deploy -f examples/hello/service.yaml --plan
  bin/weft deploy -f examples/hello/service.yaml --wait
  bin/weft rollback hello --wait             # and back
  bin/weft node drain node-2                 # its instances move elsewhere
  bin/weft node undrain node-2

  # Azure-compatible storage (blob 10000, queue 10001, table 10002):
  #   http://127.0.0.1:10000/devstoreaccount1, connection string UseDevelopmentStorage=true
  bin/weft storage account keys devstoreaccount1   # its full connection string (the Go SDK needs it)
  bin/weft storage account create photos     # or an account of your own
  bin/weft storage account keys photos

  # Tenants: customers who see only their own things, within quotas.
  bin/weft tenant create acme --cpu 2 --memory 1Gi
  bin/weft token create --tenant acme --role owner   # give this to acme
  bin/weft usage --tenant acme                       # what acme ran, by the hour
  bin/weft audit                                     # every change, who made it and from where

Ctrl-C stops everything.
TOUR
# The portal: a one-time link that signs this user in as the operator.
grep '^weft dev: portal ' .weft/dev.log | sed 's/^weft dev: //' || true
echo
SEEN=$(wc -l <.weft/dev.log)

wait "$DEV"

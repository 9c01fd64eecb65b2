#!/usr/bin/env bash
# make bench: runs Weft's benchmarks and harnesses and prints their figures.
# BENCHMARKS.md records the results with the machine they ran on.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${BENCH_OUT:-bench-results.txt}
: > "$out"
run() { echo "== $*" | tee -a "$out"; "$@" 2>&1 | tee -a "$out"; }

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -sr), kvm: $([ -w /dev/kvm ] && echo yes || echo no)" | tee -a "$out"

# The scheduler alone: 10,000 instances on 1,000 simulated nodes.
run go test -run '^$' -bench 'Place10kOn1k' -benchtime 3x ./internal/fabric/placement/
# The state store: batches per second (fsync per batch, and group commit).
run go test -run '^$' -bench 'Apply' -benchtime 2s ./internal/state/
# A page of 1,000 of 100,000 storage accounts, against the whole list.
run go test -run '^$' -bench 'PageOf100k' -benchtime 20x ./internal/accounts/
# One deploy among 1,000 services that publish ports.
run go test -run '^$' -bench 'DeployAmong1000Services' -benchtime 200x ./internal/fabric/
# Reconcile passes over 20,000 instances on 1,000 nodes (CPU per pass), the
# load balancer's endpoints, the assignment views, and the API's calls while
# passes write.
run go test -run '^$' -bench 'SteadyPass20k|DeployPass20k|Endpoints20k|AssignmentView20k' -benchmem -benchtime 40x ./internal/fabric/
run go test -run '^$' -bench 'APIWhilePassesRun20k' -benchtime 20s ./internal/fabric/
# The load balancer's sync loop while the state is written back to back.
run go test -run '^$' -bench 'LBSyncDuringWrites20k' -benchtime 2000x ./internal/fabric/
# The meter: one step over 10,000 running instances.
run go test -run '^$' -bench 'MeterStep10k' -benchtime 20x ./internal/metering/
# The load balancer against direct requests.
run go test -run '^$' -bench 'HTTP' -benchtime 3s ./internal/lb/
# Real processes: deploy to healthy, node death to replacements healthy, upgrade under load.
run go test -run '^$' -bench 'DeployToHealthy|NodeDeath' -benchtime 10x -timeout 30m ./e2e/
run go test -run '^$' -bench 'RollingUpgradeUnderLoad' -benchtime 3x -timeout 30m ./e2e/
# The controller at scale (issue 19): real servers, simulated nodes (real
# agents over a fake runtime), deploy to all running, 10% node loss healed;
# one server, then three with the leader killed mid-deploy. FLEET_NODES and
# FLEET_INSTANCES grow it toward the 1,000 nodes / 20,000 instances goal.
run go run ./cmd/weft-fleet -nodes "${FLEET_NODES:-50}" -instances "${FLEET_INSTANCES:-1000}" -json
run go run ./cmd/weft-fleet -nodes "${FLEET_NODES:-50}" -instances "${FLEET_INSTANCES:-1000}" -servers 3 -kill-leader -json
# Replicated controllers: failover and committed writes per second.
run go test -run '^$' -bench 'Apply|Failover' -benchtime 3s ./internal/raftstore/
# Replicated storage: the storage benchmarks' writes (internal/storage/storageload)
# against a primary with no replica, one and two in-sync replicas on loopback;
# then SIGKILL of the storage primary of three servers to another primary and to
# the first write acknowledged through a surviving server.
run go test -run '^$' -bench 'ReplicatedWrites' -benchtime 2s -timeout 20m ./internal/storage/replica/
run go test -run '^$' -bench 'StorageTakeover' -benchtime 5x -timeout 30m ./e2e/
# Containers: start to healthy through the driver, runc by hand (the floor)
# and docker run (when docker.io is installed; its daemon is started here).
dockerd_pid=
if command -v dockerd >/dev/null && ! docker info >/dev/null 2>&1; then
  dockerd >/tmp/weft-bench-dockerd.log 2>&1 & dockerd_pid=$!
  for _ in $(seq 50); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
fi
run go test -run '^$' -bench 'StartToHealthy' -benchtime 100x -timeout 20m ./internal/driver/container/
[ -n "$dockerd_pid" ] && kill "$dockerd_pid"
# Virtual machines (TCG where KVM does not work): boot to guest-agent ready,
# live migration of 256 MiB and 1 GiB guests, and a persistent VM's
# relocation after its host's agent and QEMU are killed.
run go test -run '^$' -bench 'BootToReady' -benchtime 10x -timeout 20m ./internal/driver/qemu/
run go test -run '^$' -bench 'LiveMigration' -benchtime 3x -timeout 20m ./internal/driver/qemu/
# 50 back-and-forth live migrations of a guest verifying its memory, the
# host's cores kept busy (about 7 minutes under TCG).
run go test -run 'TestLiveMigrationStress$' -v -timeout 25m ./internal/driver/qemu/ -long
run go test -run '^$' -bench 'PersistentVMRelocation' -benchtime 3x -timeout 30m ./e2e/
# An extension's new settings to success in a running VM's guest, and in a
# process instance; the metadata service asked with a process instance's
# address and token (requests per second, p99).
run go test -run '^$' -bench 'VMExtensionSet' -benchtime 5x -timeout 20m ./e2e/
run go test -run '^$' -bench 'ProcessExtensionSet|MetadataFromInstance' -benchtime 5x -timeout 20m ./e2e/
# Drives: fio-style jobs from another process through a drive, on the local
# disk (the floor) and on the page blob through the storage API.
run go test -run '^$' -bench 'DriveIO' -benchtime 3x ./internal/drive/
run go test -run '^$' -bench 'PersistentContainerRelocation' -benchtime 3x -timeout 30m ./e2e/
# Private networks: TCP throughput and round trips between endpoints on one
# bridge and across two hosts through VXLAN, against the hosts' own underlay
# veth (the floor); needs root (network namespaces).
run go test -run '^$' -bench 'Overlay' -benchtime 2s ./internal/overlay/
# VPN gateways: one TCP stream from an "on-premises" namespace through a
# network's VPN gateway into an instance, against raw wireguard-go between two
# namespaces (the floor); needs root.
run go test -run '^$' -bench 'WireGuardRaw' -benchtime 200x ./internal/wireguard/
run go test -run '^$' -bench 'VPNThroughput' -benchtime 200x -timeout 30m ./e2e/
# A VM on a virtual network and a process instance of it, over the overlay
# (TCG guest): ping both ways and 32 MiB from the guest to the instance.
run go test -run '^$' -bench 'VMToInstanceOverlay' -benchtime 3x -timeout 20m ./e2e/
# Table entity group transactions of 100 inserts (Azure's most), 8 clients.
run go test -run '^$' -bench 'Batch100' -benchtime 2s ./internal/storage/table/
# Find Blobs by Tags over 100,000 tagged blobs, through the SDK.
run go test -run '^$' -bench 'FindBlobsByTags100k' -benchtime 2s ./internal/storage/blob/
# Storage through the official Azure SDK, beside Azurite when it can be installed.
if [ -x scripts/bench-storage.sh ]; then run scripts/bench-storage.sh; fi
echo "results in $out"

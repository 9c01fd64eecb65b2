package daemon

import (
	"context"
	"fmt"
	"strings"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/accounts"
	"github.com/weftcloud/weft/internal/lb"
	"github.com/weftcloud/weft/internal/metering"
	"github.com/weftcloud/weft/internal/storage/storageserver"
	"github.com/weftcloud/weft/internal/tenants"
)

// usageCounts returns what this server counts for metering beyond the
// fabric's footprint: the bytes through its load balancer per service,
// the requests its storage served per account (nil storage: none), and as
// gauges the bytes in each account's blobs where its storage serves.
func usageCounts(bal *lb.Balancer, stor *storageserver.Server, accts *accounts.Store) func() (counts, gauges []metering.Count) {
	return func() (out, gauges []metering.Count) {
		for key, n := range bal.Bytes() {
			// Endpoint keys are TENANT/SERVICE/ROLE/ENDPOINT (fabric).
			parts := strings.SplitN(key, "/", 3)
			if len(parts) < 3 || n == 0 {
				continue
			}
			out = append(out, metering.Count{Tenant: parts[0], Service: parts[1], Meter: api.MeterLBGiB, Value: float64(n) / (1 << 30)})
		}
		if stor == nil {
			return out, nil
		}
		for name, n := range stor.Transactions() {
			if tenant, ok := accts.TenantOf(name); ok {
				out = append(out, metering.Count{Tenant: tenant, Service: name, Meter: api.MeterStorageTransactions, Value: float64(n)})
			}
		}
		for name, n := range stor.AccountBytes() {
			if tenant, ok := accts.TenantOf(name); ok {
				gauges = append(gauges, metering.Count{Tenant: tenant, Service: name, Meter: api.MeterStorageGiBHours, Value: float64(n) / (1 << 30)})
			}
		}
		return out, gauges
	}
}

// storageFull names the accounts whose tenant's storage quota the counted
// bytes reach: every account of such a tenant, with the reason.
func storageFull(accts *accounts.Store, ts *tenants.Store) func(map[string]int64) map[string]string {
	return func(bytes map[string]int64) map[string]string {
		used := map[string]int64{}
		for name, n := range bytes {
			if tenant, ok := accts.TenantOf(name); ok {
				used[tenant] += n
			}
		}
		full := map[string]string{}
		for tenant, n := range used {
			t, err := ts.Get(tenant)
			if err != nil || t.Quota.Storage == nil || n < int64(*t.Quota.Storage) {
				continue
			}
			why := fmt.Sprintf("tenant %s has used its storage quota (%s of %s); delete data or ask for a larger quota", tenant, api.Bytes(n), *t.Quota.Storage)
			for _, a := range accts.List(context.Background(), tenant) {
				full[a.Name] = why
			}
		}
		return full
	}
}

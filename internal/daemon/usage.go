package daemon

import (
	"strings"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/accounts"
	"github.com/weftcloud/weft/internal/lb"
	"github.com/weftcloud/weft/internal/metering"
	"github.com/weftcloud/weft/internal/storage/storageserver"
)

// usageCounts returns what this server counts for metering beyond the
// fabric's footprint: the bytes through its load balancer per service,
// and the requests its storage served per account (nil storage: none).
func usageCounts(bal *lb.Balancer, stor *storageserver.Server, accts *accounts.Store) func() []metering.Count {
	return func() []metering.Count {
		var out []metering.Count
		for key, n := range bal.Bytes() {
			// Endpoint keys are TENANT/SERVICE/ROLE/ENDPOINT (fabric).
			parts := strings.SplitN(key, "/", 3)
			if len(parts) < 3 || n == 0 {
				continue
			}
			out = append(out, metering.Count{Tenant: parts[0], Service: parts[1], Meter: api.MeterLBGiB, Value: float64(n) / (1 << 30)})
		}
		if stor == nil {
			return out
		}
		for name, n := range stor.Transactions() {
			if tenant, ok := accts.TenantOf(name); ok {
				out = append(out, metering.Count{Tenant: tenant, Service: name, Meter: api.MeterStorageTransactions, Value: float64(n)})
			}
		}
		return out
	}
}

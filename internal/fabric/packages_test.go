package fabric_test

import (
	"context"
	"io"
	"testing"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/fabric"
	"github.com/weftcloud/weft/internal/fabric/fabrictest"
)

// TestDeployFetchesAPackageFromAnotherServer: a package uploaded to the
// server that then lost the leadership is fetched by the new leader's
// deploy instead of refused as never uploaded.
func TestDeployFetchesAPackageFromAnotherServer(t *testing.T) {
	ctx := context.Background()
	old := fabrictest.New(t, fabric.Config{}, false) // the leader the package went to
	digest := old.EmptyPackage(t)
	leader := fabrictest.New(t, fabric.Config{FetchPackage: func(ctx context.Context, d string) (io.ReadCloser, error) {
		return old.Package(ctx, d)
	}}, false)
	_, err := leader.Deploy(ctx, api.DefaultTenant, api.ServiceSpec{Name: "web", Roles: []api.RoleSpec{{
		Name: "w", Kind: api.KindWorker, Runtime: api.RuntimeProcess, Package: digest, Command: []string{"./w"}, Instances: 1,
	}}})
	if err != nil {
		t.Fatalf("deploy of a package another server holds: %v", err)
	}
}

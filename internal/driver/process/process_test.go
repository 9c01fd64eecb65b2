package process

import (
	"os"
	"testing"

	"github.com/weftcloud/weft/internal/driver"
	"github.com/weftcloud/weft/internal/driver/drivertest"
	"github.com/weftcloud/weft/internal/shim"
)

// TestMain lets the test binary be the shim: the driver re-executes it with
// "weft-shim DIR", as it runs `weft shim DIR` in production.
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "weft-shim" {
		os.Exit(shim.Main(os.Args[2:]))
	}
	os.Exit(m.Run())
}

func newDriver(t *testing.T) driver.Driver {
	d, err := New(Config{ShimCommand: []string{os.Args[0], "weft-shim"}, CgroupParent: "weft-test"})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var programs = map[drivertest.Program]string{
	drivertest.Serve:      `echo started; env; exec sleep 600`,
	drivertest.Exit3:      `echo bye; exit 3`,
	drivertest.IgnoreTerm: `trap '' TERM; echo ready; while true; do sleep 0.05; done`,
	drivertest.Hog:        `head -c 512m /dev/zero | tail > /dev/null`,
}

func TestConformance(t *testing.T) {
	probe, _ := New(Config{ShimCommand: []string{os.Args[0], "weft-shim"}, CgroupParent: "weft-test"})
	drivertest.Run(t, drivertest.Runtime{
		New: newDriver,
		Spec: func(t *testing.T, id, dir string, prog drivertest.Program) driver.Spec {
			spec := driver.Spec{
				ID: id, Dir: dir, Command: []string{"/bin/sh", "-c", programs[prog]},
				Env:   map[string]string{"WEFT_INSTANCE": id, "WEFT_PORT_HTTP": "18080", "GREETING": "hi there"},
				Ports: map[string]int{"http": 18080},
			}
			if prog == drivertest.Hog {
				spec.Memory = 32 << 20
			}
			return spec
		},
		Limits: probe.Limits(),
	})
}

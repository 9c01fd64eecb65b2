package fabric

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/images"
	"github.com/weftcloud/weft/internal/state"
)

// publishImage records a vm image as weft image import does (the sim's
// nodes need no files).
func (s *sim) publishImage(name, digest string) {
	s.t.Helper()
	img, _ := json.Marshal(api.Image{Name: name, Type: api.ImageVM, Digest: digest})
	if _, err := s.store.Apply(s.ctx, []state.Op{{Kind: state.KindImages, Key: images.Key(api.DefaultTenant, name), Value: img}}); err != nil {
		s.t.Fatal(err)
	}
}

// onImage counts the live, healthy instances of db/vm on the image digest.
func (s *sim) onImage(digest string) int {
	n := 0
	for _, in := range s.records("db") {
		if in.live() && in.healthy() && in.Spec.ImageDigest == digest {
			n++
		}
	}
	return n
}

// TestAutoUpgradeRollsANewImageByUpdateDomain: a vm role with
// autoUpgrade moves onto a newer image of its family as soon as it is
// published, as a new service version rolled out one update domain at a
// time; other families, older versions and container images are left
// alone; a rollback goes back and stays; a deploy naming the older version
// keeps the newer image.
func TestAutoUpgradeRollsANewImageByUpdateDomain(t *testing.T) {
	s := newSim(t, 0)
	for i := 1; i <= 3; i++ {
		s.addNode(fmt.Sprintf("node-%d", i), fmt.Sprintf("fd%d", i), 4, api.RuntimeVM)
	}
	s.publishImage("base:1", "sha256:b1")
	model := api.ServiceSpec{Name: "db", UpgradeDomains: 3, Roles: []api.RoleSpec{{
		Name: "vm", Kind: api.KindWorker, Runtime: api.RuntimeVM, Image: "base:1", AutoUpgrade: true,
		Instances: 3, Size: api.Size{CPU: 1, Memory: 256 << 20},
	}}}
	s.deploy(model)
	s.settle(20, "3 running base:1", func() bool { return s.onImage("sha256:b1") == 3 })

	s.publishImage("base:0.9", "sha256:b09")
	s.publishImage("other:7", "sha256:o7")
	img, _ := json.Marshal(api.Image{Name: "base:5", Type: api.ImageContainer, Digest: "sha256:c5"})
	s.store.Apply(s.ctx, []state.Op{{Kind: state.KindImages, Key: images.Key(api.DefaultTenant, "base:5"), Value: img}})
	for range 5 {
		s.step()
	}
	if svc, _ := s.c.Service(s.ctx, api.DefaultTenant, "db"); svc.Version != 1 || s.onImage("sha256:b1") != 3 {
		t.Fatalf("upgraded onto an older, another family's or a container image: version %d\n%s", svc.Version, s.dump())
	}

	s.publishImage("base:2", "sha256:b2")
	s.step()
	svc, _ := s.c.Service(s.ctx, api.DefaultTenant, "db")
	if svc.Version != 2 || svc.Spec.Roles[0].Image != "base:2" || svc.Spec.Roles[0].ImageDigest != "sha256:b2" {
		t.Fatalf("after base:2 was published: version %d, role image %s (%s)", svc.Version, svc.Spec.Roles[0].Image, svc.Spec.Roles[0].ImageDigest)
	}
	for i := 0; s.onImage("sha256:b2") < 3; i++ {
		if i == 100 {
			t.Fatalf("the upgrade did not finish:\n%s", s.dump())
		}
		// One update domain (one of three instances) out at a time.
		if serving := s.onImage("sha256:b1") + s.onImage("sha256:b2"); serving < 2 {
			t.Fatalf("step %d: %d instances serving during the auto-upgrade:\n%s", i, serving, s.dump())
		}
		s.step()
		s.clock.Advance(100 * time.Millisecond)
	}
	found := false
	events, _ := s.c.Events().Since(0)
	for _, e := range events {
		found = found || (e.Type == "service.autoupgrade" && strings.Contains(e.Message, "role vm from image base:1 to base:2 (now version 2)"))
	}
	if !found {
		t.Error("no service.autoupgrade event")
	}
	if n := testutil.ToFloat64(s.c.figures.autoUps); n != 1 {
		t.Errorf("weft_fabric_auto_upgrades_total = %v, want 1", n)
	}

	// A rollback goes back to base:1 and is not undone.
	s.settle(20, "stable", func() bool {
		svc, _ := s.c.Service(s.ctx, api.DefaultTenant, "db")
		return svc.Status == api.ServiceStable
	})
	if _, err := s.c.Rollback(s.ctx, api.DefaultTenant, "db"); err != nil {
		t.Fatal(err)
	}
	s.settle(100, "rolled back to base:1", func() bool { return s.onImage("sha256:b1") == 3 })
	for range 5 {
		s.step()
	}
	if svc, _ := s.c.Service(s.ctx, api.DefaultTenant, "db"); svc.Spec.Roles[0].Image != "base:1" || s.onImage("sha256:b1") != 3 {
		t.Fatalf("the rollback was undone: role image %s\n%s", svc.Spec.Roles[0].Image, s.dump())
	}

	// A newer image still comes; redeploying the model (base:1) keeps it.
	s.publishImage("base:3", "sha256:b3")
	s.settle(100, "on base:3", func() bool { return s.onImage("sha256:b3") == 3 })
	model.Roles[0].Settings = map[string]string{"NOTE": "redeployed"}
	if svc := s.deploy(model); svc.Spec.Roles[0].Image != "base:3" || svc.Spec.Roles[0].ImageDigest != "sha256:b3" {
		t.Errorf("a deploy naming base:1 put the role on %s (%s), want base:3 kept", svc.Spec.Roles[0].Image, svc.Spec.Roles[0].ImageDigest)
	}
}

// autoUpgrade is refused where it cannot hold.
func TestAutoUpgradeValidation(t *testing.T) {
	for _, tc := range []struct {
		role api.RoleSpec
		want string
	}{
		{api.RoleSpec{Name: "w", Kind: api.KindWorker, Runtime: api.RuntimeContainer, Image: "base:1", AutoUpgrade: true, Instances: 1},
			"roles[0].autoUpgrade: only a vm role's image is upgraded by the fabric (the runtime is container)"},
		{api.RoleSpec{Name: "w", Kind: api.KindWorker, Runtime: api.RuntimeVM, Image: "base", AutoUpgrade: true, Instances: 1},
			`roles[0].image: "base" has no version: autoUpgrade follows an image named NAME:VERSION`},
		{api.RoleSpec{Name: "w", Kind: api.KindWorker, Runtime: api.RuntimeVM, Image: "base:latest", AutoUpgrade: true, Instances: 1},
			`roles[0].image: "base:latest" has no version`},
	} {
		spec := api.ServiceSpec{Name: "db", Roles: []api.RoleSpec{tc.role}}
		spec.SetDefaults()
		if err := spec.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.role, err, tc.want)
		}
	}
}

// TestRunAutoUpgradesWhenAnImageIsPublished: the controller's loop starts
// the auto-upgrade when the image is written (publishing wakes it), with
// nothing else happening.
func TestRunAutoUpgradesWhenAnImageIsPublished(t *testing.T) {
	s := newSim(t, 0)
	s.publishImage("base:1", "sha256:b1")
	s.deploy(api.ServiceSpec{Name: "db", UpgradeDomains: 3, Roles: []api.RoleSpec{{
		Name: "vm", Kind: api.KindWorker, Runtime: api.RuntimeVM, Image: "base:1", AutoUpgrade: true,
		Instances: 1, Size: api.Size{CPU: 1, Memory: 256 << 20},
	}}})
	ctx, cancel := context.WithCancel(s.ctx)
	done := make(chan error, 1)
	go func() { done <- s.c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	s.publishImage("base:1.1", "sha256:b11")
	deadline := time.Now().Add(30 * time.Second)
	for idx := uint64(0); ; {
		if svc, _ := s.c.Service(s.ctx, api.DefaultTenant, "db"); svc.Version == 2 && svc.Spec.Roles[0].ImageDigest == "sha256:b11" {
			return
		}
		wctx, wcancel := context.WithDeadline(ctx, deadline)
		next, err := s.store.Wait(wctx, idx)
		wcancel()
		if err != nil {
			t.Fatalf("no auto-upgrade to base:1.1 within 30 s: %v", err)
		}
		idx = next
	}
}

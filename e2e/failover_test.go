package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
)

// TestImagesOutliveTheirServer imports an image into three servers that
// each run the storage service, waits until every server's storage holds
// its file, kills the server it was uploaded to (the leader, which takes
// the uploads) and reads the file back through the new leader, as a node
// pulling the image would.
func TestImagesOutliveTheirServer(t *testing.T) {
	parallel(t)
	c := newServersWith(t, 3, storageFlags(t))
	uploadedTo := c.leader()
	c.helloImage("app", "hi")
	var imgs []api.Image
	if err := json.Unmarshal([]byte(c.mustWeft("image", "list", "-o", "json")), &imgs); err != nil || len(imgs) != 1 {
		t.Fatalf("image list: %v %+v", err, imgs)
	}
	file := imgs[0].Files[0]
	read := func(addr, query string) (int, string) {
		resp, err := c.httpGet(context.Background(), addr, "/v1/imagefiles/"+file.Digest+query)
		if err != nil {
			return 0, ""
		}
		defer resp.Body.Close()
		h := sha256.New()
		io.Copy(h, resp.Body)
		return resp.StatusCode, "sha256:" + hex.EncodeToString(h.Sum(nil))
	}
	for name, s := range c.servers {
		c.waitFor("server "+name+" holding a copy of the image file", 30*time.Second, func() bool {
			code, digest := read(s.addr, "?stale&local")
			return code == http.StatusOK && digest == file.Digest
		})
	}

	c.kill9(c.servers[uploadedTo])
	c.waitFor("a new leader", 30*time.Second, func() bool {
		l := c.leader()
		return l != "" && l != uploadedTo
	})
	for name, s := range c.servers {
		if name == uploadedTo {
			continue
		}
		// Forwarded to the new leader, which answers from its own copy
		// (503 until this server learns who leads, as clients retry).
		c.waitFor("the image file through "+name+" after the upload server died", 10*time.Second, func() bool {
			code, digest := read(s.addr, "")
			return code == http.StatusOK && digest == file.Digest
		})
	}
}

// TestPersistentVMAfterLeaderChange makes a persistent VM while one
// server leads, moves the lead to another (a graceful restart hands it
// over), then kills the agent of the VM's node with SIGKILL and leaves its
// QEMU running, as a crashed agent does: the VM comes back on the other
// node with what it synced, its disk read from the storage it was made on,
// which is not the new leader's. When the agent comes back it stops the
// copy it left without taking the disk back: the new copy still writes.
// (TestPersistentVMSurvivesHostLoss kills the QEMU with its agent.)
func TestPersistentVMAfterLeaderChange(t *testing.T) {
	vmTest(t)
	c := newServersWith(t, 3, storageFlags(t))
	c.startNodes(2)
	c.mustWeft("image", "build", "tiny")
	c.mustWeft("vm", "create", "keeper", "--image", "tiny", "--memory", "256Mi", "--disk", "512Mi", "--wait")
	c.mustWeft("vm", "exec", "keeper", "--", "/bin/sh", "-c", "echo precious > /root/data && sync")

	made := c.leader()
	s := c.servers[made]
	s.cmd.Process.Signal(syscall.SIGTERM)
	<-s.done
	c.startReplica(made, s.addr, strings.Split(c.apiArg, ","))
	c.waitFor("another server leading, and "+made+" back", 30*time.Second, func() bool {
		_, err := c.clientFor(s.addr).Status(context.Background())
		l := c.leader()
		return err == nil && l != "" && l != made
	})

	vm := c.vm("keeper")
	stale := qemuOf(t, vm.Instance)
	c.kill9(c.agents[vm.Node])
	c.waitFor("the VM running on the other node", 2*time.Minute, func() bool {
		v := c.vm("keeper")
		return v.Node != "" && v.Node != vm.Node && v.State == api.StateRunning
	})
	if out := c.mustWeft("vm", "exec", "keeper", "--", "cat", "/root/data"); strings.TrimSpace(out) != "precious" {
		t.Errorf("the file the VM synced reads %q after the move under the new leader", out)
	}
	c.startAgent(vm.Node)
	c.waitFor("the stale copy stopped", 30*time.Second, func() bool { return !syscallAlive(stale) })
	c.mustWeft("vm", "exec", "keeper", "--", "/bin/sh", "-c", "echo after | dd of=/root/after conv=fsync")
}

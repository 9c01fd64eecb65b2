package instancenet

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"

	"github.com/vishvananda/netns"
)

// inNamespace runs fn on a thread in the namespace at path.
func inNamespace(t *testing.T, path string, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	origin, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer origin.Close()
	target, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		t.Fatal(err)
	}
	defer netns.Set(origin)
	fn()
}

// TestMetadataLeavesPort80ToTheWorkload: in an instance's namespace, the
// workload binds 0.0.0.0:80 (as a web server does), and a connection to
// the metadata address's port 80 still reaches the metadata relay.
func TestMetadataLeavesPort80ToTheWorkload(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (iproute2)")
	}
	ipam, dir := t.TempDir(), t.TempDir()
	link, err := Open(ipam, dir, "inst-"+strconv.Itoa(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	defer Close(ipam, dir)
	var workload, relay net.Listener
	inNamespace(t, link.NetnsPath(), func() {
		if workload, err = net.Listen("tcp", "0.0.0.0:80"); err != nil {
			t.Fatalf("the workload cannot have port 80: %v", err)
		}
		if relay, err = net.Listen("tcp", net.JoinHostPort(MetadataAddr, strconv.Itoa(metadataPort))); err != nil {
			t.Fatal(err)
		}
	})
	defer workload.Close()
	defer relay.Close()
	go http.Serve(relay, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "metadata") }))
	go http.Serve(workload, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "workload") }))
	var got string
	inNamespace(t, link.NetnsPath(), func() {
		// Dialled on this thread, in the namespace (an http.Transport
		// dials on goroutines of its own, in whatever namespace).
		conn, err := net.Dial("tcp", net.JoinHostPort(MetadataAddr, "80"))
		if err != nil {
			t.Fatalf("connect to the metadata address: %v", err)
		}
		defer conn.Close()
		io.WriteString(conn, "GET / HTTP/1.0\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		got = string(b)
	})
	if got != "metadata" {
		t.Errorf("http://%s/ answered %q, want the metadata relay's", MetadataAddr, got)
	}
}

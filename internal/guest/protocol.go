// Package guest is the agent that runs inside Weft VMs (`weft guest`) and the
// node agent's client for it.
//
// The two talk over a virtio-serial port named "weft.agent": in the guest it
// is /dev/virtio-ports/weft.agent, on the host QEMU listens on a unix socket
// that the Client dials. The protocol is JSON lines. The host sends requests
// {"id":N,"op":"...",...}; the guest answers each with {"id":N,"ok":bool,
// "error":"...",...}, not necessarily in order. The guest also sends an
// unsolicited {"op":"ready",...} whenever it (re)opens the port.
//
// A virtio-serial port drops what is written while the other side has it
// closed, so either side may miss messages around a reconnect: the client
// polls with pings until it gets an answer (Client.Ready), and callers bound
// every request with a context deadline.
package guest

import (
	"net/netip"
	"time"
)

// PortName is the name of the virtio-serial port (QEMU's virtserialport
// name=) the agent listens on.
const PortName = "weft.agent"

// DefaultPortPath is where the guest kernel exposes the port.
const DefaultPortPath = "/dev/virtio-ports/" + PortName

// Operations of the protocol.
const (
	OpReady    = "ready" // guest to host, unsolicited
	OpPing     = "ping"
	OpExec     = "exec"
	OpStart    = "start"
	OpStatus   = "status"
	OpSetTime  = "settime"
	OpSync     = "sync"
	OpShutdown = "shutdown"
	// OpWriteFile writes one file, folder or symbolic link (a chunk of a
	// file at a time); OpRemove removes a path and what is under it.
	OpWriteFile = "writefile"
	OpRemove    = "remove"
	// OpStats asks for the guest's figures (Stats).
	OpStats = "stats"
	// OpMount mounts the ext4 file system of the disk whose serial is
	// Serial at Path (a drive of the instance, see Client.Mount).
	OpMount = "mount"
	// OpHTTP is a request the guest makes of the host (guest to host,
	// unsolicited, numbered by Call): one the guest's metadata service
	// takes from a program in the guest. The host answers it with an
	// OpHTTPReply request carrying the same Call.
	OpHTTP      = "http"
	OpHTTPReply = "httpreply"
	// OpRoutes makes the routes of the interface with MAC exactly Routes,
	// through Via (see Client.SetRoutes).
	OpRoutes = "routes"
)

// MaxOutput is the most bytes of stdout, and separately of stderr, that an
// exec returns; the rest is discarded and the result says it was truncated.
const MaxOutput = 1 << 20

// maxLine bounds one JSON line; an exec answer holds up to 2 MiB of output,
// base64-encoded.
const maxLine = 8 << 20

// request is one host-to-guest message.
type request struct {
	ID            int64             `json:"id"`
	Op            string            `json:"op"`
	Cmd           []string          `json:"cmd,omitempty"`
	Env           map[string]string `json:"env,omitempty"`
	Dir           string            `json:"dir,omitempty"`
	TimeoutMillis int64             `json:"timeoutMillis,omitempty"`
	UnixNanos     int64             `json:"unixNanos,omitempty"`
	Reboot        bool              `json:"reboot,omitempty"`

	// writefile and remove: Path is absolute. A folder (IsDir) or a file
	// gets Mode; a file gets Data, appended with Append (a file larger
	// than a line comes in chunks); Link makes a symbolic link to it.
	Path   string `json:"path,omitempty"`
	Mode   uint32 `json:"mode,omitempty"`
	Data   []byte `json:"data,omitempty"`
	Append bool   `json:"append,omitempty"`
	IsDir  bool   `json:"isDir,omitempty"`
	Link   string `json:"link,omitempty"`

	// mount: the disk's serial (QEMU's serial= of its device); Path is
	// where it is mounted.
	Serial string `json:"serial,omitempty"`

	// routes: the interface (by its MAC), the routes and their gateway.
	MAC    string         `json:"mac,omitempty"`
	Routes []netip.Prefix `json:"routes,omitempty"`
	Via    netip.Addr     `json:"via,omitzero"`

	// httpreply
	Call   int64             `json:"call,omitempty"`
	Status int               `json:"status,omitempty"`
	Header map[string]string `json:"header,omitempty"`
	Body   []byte            `json:"body,omitempty"`
}

// response is one guest-to-host message: an answer (ID > 0) or, with Op
// set, an unsolicited notice.
type response struct {
	ID    int64  `json:"id"`
	Op    string `json:"op,omitempty"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`

	// ready and ping
	Hostname   string     `json:"hostname,omitempty"`
	Addresses  []string   `json:"addresses,omitempty"`
	BootMillis int64      `json:"bootMillis,omitempty"`
	Uptime     float64    `json:"uptime,omitempty"`
	Load       [3]float64 `json:"load,omitempty"`
	NoTimer    bool       `json:"noTimer,omitempty"`

	// exec; output is base64 in JSON, so any bytes survive.
	ExitCode        int    `json:"exitCode,omitempty"`
	Stdout          []byte `json:"stdout,omitempty"`
	Stderr          []byte `json:"stderr,omitempty"`
	StdoutTruncated bool   `json:"stdoutTruncated,omitempty"`
	StderrTruncated bool   `json:"stderrTruncated,omitempty"`

	// status
	WorkloadRunning  bool   `json:"workloadRunning,omitempty"`
	WorkloadPid      int    `json:"workloadPid,omitempty"`
	WorkloadRestarts int    `json:"workloadRestarts,omitempty"`
	LastExit         string `json:"lastExit,omitempty"`

	// stats
	Stats *Stats `json:"stats,omitempty"`

	// http (guest to host)
	Call   int64             `json:"call,omitempty"`
	Method string            `json:"method,omitempty"`
	URL    string            `json:"url,omitempty"` // path and query
	Header map[string]string `json:"header,omitempty"`
	Body   []byte            `json:"body,omitempty"`
}

// Hello is what the guest says about itself when it opens the port, or what
// the first answered ping says.
type Hello struct {
	Hostname  string
	Addresses []string // non-loopback IPv4 and IPv6 addresses, without prefix length
	// SinceBoot is how long the guest had been up when it said hello.
	SinceBoot time.Duration
	// NoTimer: the guest's CPU has no timer interrupt source (its kernel
	// says so: see timerless). Nothing in it that sleeps wakes up again, the
	// agent included; boot it again.
	NoTimer bool
}

// PingResult is the answer to a ping.
type PingResult struct {
	Uptime    time.Duration // from the guest's /proc/uptime
	Hostname  string
	Addresses []string
	Load      [3]float64 // 1, 5 and 15 minute load averages
}

// Workload is the command the guest agent supervises: the VM role's command.
type Workload struct {
	Cmd []string
	Env map[string]string
	Dir string
}

// WorkloadStatus is what the guest agent knows about its workload.
type WorkloadStatus struct {
	Running  bool
	PID      int
	Restarts int    // how often it was restarted after exiting
	LastExit string // e.g. "exited with code 1", "" when it has not exited
}

// Stats are the guest's CPU, memory and disk figures.
type Stats struct {
	// CPUBusy and CPUTotal are the jiffies of all CPUs that were busy
	// and that passed, since the agent's previous answer to a stats
	// request (since boot for the first).
	CPUBusy  uint64     `json:"cpuBusy"`
	CPUTotal uint64     `json:"cpuTotal"`
	CPUs     int        `json:"cpus"`
	Load     [3]float64 `json:"load"`
	// Memory in bytes: MemTotal and MemAvailable of /proc/meminfo.
	MemTotal     uint64 `json:"memTotal"`
	MemAvailable uint64 `json:"memAvailable"`
	// The root file system, in bytes.
	DiskTotal uint64 `json:"diskTotal"`
	DiskFree  uint64 `json:"diskFree"`
}

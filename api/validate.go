package api

import (
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
)

var (
	nameRE    = regexp.MustCompile(`^[a-z][a-z0-9-]{0,39}$`)
	settingRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	digestRE  = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	nodeRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
)

// ValidateNodeName checks a node's name, wherever one is given: when it
// registers, when it joins with the join token, in a certificate.
func ValidateNodeName(name string) error {
	if !nodeRE.MatchString(name) {
		return Errorf(CodeInvalid, "name: %q is not a node name (letters, digits, dots, dashes and underscores, up to 63)", name)
	}
	return nil
}

// Limits of the service model.
const (
	MaxInstances      = 1000
	MaxUpgradeDomains = 20
	// MaxModelBytes bounds a model's JSON, below the controller's limit on
	// a request body (1 MiB), so that a model too large is refused naming
	// the field that makes it so rather than as a body too large.
	MaxModelBytes = 1000 << 10
	// MaxStopTime bounds a role's stopNotice, stopExtension and stopGrace:
	// a drain or an upgrade waits for them.
	MaxStopTime = time.Hour
)

// SetDefaults fills what a model may leave out.
func (s *ServiceSpec) SetDefaults() {
	if s.UpgradeDomains == 0 {
		s.UpgradeDomains = DefaultUpgradeDomains
	}
	for i := range s.Roles {
		r := &s.Roles[i]
		if r.Persistence == "" {
			r.Persistence = Ephemeral
		}
		if r.Size.CPU == 0 {
			r.Size.CPU = 0.1
		}
		if r.Size.Memory == 0 {
			r.Size.Memory = 64 << 20
		}
		for j := range r.Endpoints {
			if r.Endpoints[j].Protocol == "" {
				r.Endpoints[j].Protocol = ProtocolHTTP
			}
		}
		if h := r.Health; h != nil {
			if h.Interval == 0 {
				h.Interval = Duration(time.Second)
			}
			if h.Timeout == 0 {
				h.Timeout = Duration(time.Second)
			}
			if h.Failures == 0 {
				h.Failures = 3
			}
		}
	}
}

// Validate checks a model (after SetDefaults). The error is an *Error with
// CodeInvalid naming every problem by its field path, the first one first:
// "roles[0].endpoints[0].port: 70000 is not a port (1-65535)".
func (s *ServiceSpec) Validate() error {
	return s.validate(false)
}

// ValidateLocal is Validate for a model still on the user's disk, whose
// process roles name a package folder instead of an uploaded digest.
func (s *ServiceSpec) ValidateLocal() error {
	return s.validate(true)
}

func (s *ServiceSpec) validate(local bool) error {
	var p problems
	if !nameRE.MatchString(s.Name) {
		p.add("name", "%q is not a name (lowercase letters, digits and dashes, starting with a letter, up to 40)", s.Name)
	}
	if s.UpgradeDomains < 1 || s.UpgradeDomains > MaxUpgradeDomains {
		p.add("upgradeDomains", "%d is out of range (1-%d)", s.UpgradeDomains, MaxUpgradeDomains)
	}
	if len(s.Roles) == 0 {
		p.add("roles", "a service needs at least one role")
	}
	roleNames := map[string]bool{}
	ports := map[int]string{}
	for i := range s.Roles {
		r := &s.Roles[i]
		at := fmt.Sprintf("roles[%d]", i)
		if !nameRE.MatchString(r.Name) {
			p.add(at+".name", "%q is not a name (lowercase letters, digits and dashes, starting with a letter, up to 40)", r.Name)
		} else if roleNames[r.Name] {
			p.add(at+".name", "%q is used by another role", r.Name)
		}
		roleNames[r.Name] = true
		r.validate(at, local, ports, &p)
	}
	if data, err := json.Marshal(s); err == nil && len(data) > MaxModelBytes {
		field, size := s.largestField()
		p.add(field, "%d bytes of the model's %d; a model is at most %d bytes (put large data in storage or the package)", size, len(data), MaxModelBytes)
	}
	return p.err()
}

// largestField names the field that takes the most room in the model's
// JSON (a setting, a command, a health probe's command) and its size.
func (s *ServiceSpec) largestField() (string, int) {
	field, size := "roles", 0
	consider := func(path string, v any) {
		if data, err := json.Marshal(v); err == nil && len(data) > size {
			field, size = path, len(data)
		}
	}
	for i, r := range s.Roles {
		at := fmt.Sprintf("roles[%d]", i)
		for k, v := range r.Settings {
			consider(at+".settings."+k, v)
		}
		consider(at+".command", r.Command)
		if r.Health != nil {
			consider(at+".health.exec", r.Health.Exec)
		}
		consider(at+".endpoints", r.Endpoints)
		consider(at+".disks", r.Disks)
	}
	return field, size
}

func (r *RoleSpec) validate(at string, local bool, ports map[int]string, p *problems) {
	validateExtensions(at, r, p)
	switch r.Kind {
	case KindWeb, KindWorker, KindVM:
	default:
		p.add(at+".kind", "%q is not a kind (web, worker or vm)", r.Kind)
	}
	switch r.Runtime {
	case RuntimeProcess:
		switch {
		case r.Package == "":
			p.add(at+".package", "the process runtime needs a package")
		case !local && !digestRE.MatchString(r.Package):
			p.add(at+".package", "%q is not an uploaded package (sha256:<64 hex digits>)", r.Package)
		}
		if len(r.Command) == 0 {
			p.add(at+".command", "the process runtime needs a command")
		}
	case RuntimeContainer, RuntimeVM:
		if r.Image == "" {
			p.add(at+".image", "the %s runtime needs an image", r.Runtime)
		}
	default:
		p.add(at+".runtime", "%q is not a runtime (process, container or vm)", r.Runtime)
	}
	if r.Kind == KindVM && r.Runtime != RuntimeVM {
		p.add(at+".runtime", "a vm role needs the vm runtime")
	}
	if r.AutoUpgrade {
		if r.Runtime != RuntimeVM {
			p.add(at+".autoUpgrade", "only a vm role's image is upgraded by the fabric (the runtime is %s)", r.Runtime)
		} else if _, _, ok := ImageVersion(r.Image); r.Image != "" && !ok {
			p.add(at+".image", "%q has no version: autoUpgrade follows an image named NAME:VERSION (such as base:1 or base:2.1)", r.Image)
		}
	}
	if r.Instances < 0 || r.Instances > MaxInstances {
		p.add(at+".instances", "%d is out of range (0-%d)", r.Instances, MaxInstances)
	}
	if r.Size.CPU < 0 {
		p.add(at+".size.cpu", "%g is negative", r.Size.CPU)
	}
	if r.Size.Memory < 0 {
		p.add(at+".size.memory", "%d is negative", r.Size.Memory)
	}
	switch r.Persistence {
	case Ephemeral:
	case Persistent:
		// A role's disks (weft vm create's) are the role's, not a
		// slot's: one instance boots from them. A persistent role of
		// many instances, on any runtime, keeps each slot's state on
		// the slot's drives.
		if len(r.Disks) > 0 && r.Instances > 1 {
			p.add(at+".instances", "a vm role with disks (weft vm create) runs at most one instance: its disks follow it; give a role of many instances drives, one per slot")
		}
	default:
		p.add(at+".persistence", "%q is not ephemeral or persistent", r.Persistence)
	}
	r.validateDrives(p, at)
	if r.Kind == KindWeb && len(r.Endpoints) == 0 {
		p.add(at+".endpoints", "a web role needs at least one endpoint")
	}
	if r.Network != "" && !nameRE.MatchString(r.Network) {
		p.add(at+".network", "%q is not a network name", r.Network)
	}
	if r.Subnet != "" && (r.Network == "" || !nameRE.MatchString(r.Subnet)) {
		p.add(at+".subnet", "%q: a subnet is named (lowercase letters, digits and dashes), and only with a network", r.Subnet)
	}
	endpoints := map[string]bool{}
	for j, ep := range r.Endpoints {
		eat := fmt.Sprintf("%s.endpoints[%d]", at, j)
		if !nameRE.MatchString(ep.Name) {
			p.add(eat+".name", "%q is not a name (lowercase letters, digits and dashes)", ep.Name)
		} else if endpoints[ep.Name] {
			p.add(eat+".name", "%q is used by another endpoint of the role", ep.Name)
		}
		endpoints[ep.Name] = true
		if ep.Protocol != ProtocolHTTP && ep.Protocol != ProtocolTCP {
			p.add(eat+".protocol", "%q is not http or tcp", ep.Protocol)
		}
		if ep.GuestPort != 0 && (r.Runtime != RuntimeVM || ep.GuestPort < 1 || ep.GuestPort > 65535) {
			p.add(eat+".guestPort", "%d: only vm roles have a guest port, from 1 to 65535", ep.GuestPort)
		}
		if ep.Port < 0 || ep.Port > 65535 {
			p.add(eat+".port", "%d is not a port (1-65535, or 0 to have one picked)", ep.Port)
		} else if ep.Port == 0 {
			// The controller picks one (fabric: assignPorts).
		} else if other, ok := ports[ep.Port]; ok {
			p.add(eat+".port", "%d is also used by %s", ep.Port, other)
		} else {
			ports[ep.Port] = eat
		}
	}
	if h := r.Health; h != nil {
		hat := at + ".health"
		n := 0
		if h.HTTP != nil {
			n++
			if !strings.HasPrefix(h.HTTP.Path, "/") {
				p.add(hat+".http.path", "%q does not start with /", h.HTTP.Path)
			}
			if !endpoints[h.HTTP.Endpoint] {
				p.add(hat+".http.endpoint", "%q is not an endpoint of the role", h.HTTP.Endpoint)
			}
		}
		if h.TCP != nil {
			n++
			if !endpoints[h.TCP.Endpoint] {
				p.add(hat+".tcp.endpoint", "%q is not an endpoint of the role", h.TCP.Endpoint)
			}
		}
		if len(h.Exec) > 0 {
			n++
		}
		if n != 1 {
			p.add(hat, "needs exactly one of http, tcp and exec")
		}
		if h.Interval <= 0 {
			p.add(hat+".interval", "must be positive")
		}
		if h.Timeout <= 0 {
			p.add(hat+".timeout", "must be positive")
		}
		if h.Failures < 1 || h.Failures > 100 {
			p.add(hat+".failures", "%d is out of range (1-100)", h.Failures)
		}
	}
	if r.OnStop != nil && (len(r.OnStop) == 0 || r.OnStop[0] == "") {
		p.add(at+".onStop", "needs a program to run")
	}
	for _, d := range []struct {
		field string
		v     Duration
	}{{"stopNotice", r.StopNotice}, {"stopExtension", r.StopExtension}, {"stopGrace", r.StopGrace}} {
		if d.v < 0 || time.Duration(d.v) > MaxStopTime {
			p.add(at+"."+d.field, "%s is out of range (0-%s)", d.v, Duration(MaxStopTime))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(r.Settings)) {
		if !settingRE.MatchString(k) || strings.HasPrefix(k, "WEFT_") {
			p.add(at+".settings."+k, "is not a setting name (letters, digits and _, not starting with WEFT_)")
		}
	}
}

// problems collects validation messages in order.
type problems []string

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, path+": "+fmt.Sprintf(format, args...))
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return &Error{Code: CodeInvalid, Message: strings.Join(p, "; ")}
}

// validateDrives checks a role's drives: each named once, big enough to
// hold ext4, mounted (in a container or a VM) at an absolute path of its
// own.
func (r *RoleSpec) validateDrives(p *problems, at string) {
	names, mounts := map[string]bool{}, map[string]bool{}
	for i, d := range r.Drives {
		dat := fmt.Sprintf("%s.drives[%d]", at, i)
		switch {
		case !nameRE.MatchString(d.Name):
			p.add(dat+".name", "%q is not a drive name (lowercase letters, digits and dashes, starting with a letter, up to 40)", d.Name)
		case names[d.Name]:
			p.add(dat+".name", "%q is used twice", d.Name)
		}
		names[d.Name] = true
		switch {
		case d.Size < MinDriveSize:
			p.add(dat+".size", "a drive needs at least %s, not %s", Bytes(MinDriveSize), d.Size)
		case d.Size%512 != 0:
			p.add(dat+".size", "%d bytes is not a whole number of 512-byte pages", int64(d.Size))
		}
		if d.Mount == "" {
			if r.Runtime != RuntimeProcess {
				p.add(dat+".mount", "a %s role's drive needs the folder it is mounted on (mount: /data)", r.Runtime)
			}
			continue
		}
		clean := path.Clean(d.Mount)
		switch {
		case !path.IsAbs(d.Mount):
			p.add(dat+".mount", "%q is not an absolute path", d.Mount)
		case clean == "/":
			p.add(dat+".mount", "a drive cannot be mounted on /")
		case mounts[clean]:
			p.add(dat+".mount", "%q is the mount of another drive", d.Mount)
		}
		mounts[clean] = true
	}
}

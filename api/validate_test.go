package api

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func goodSpec() ServiceSpec {
	return ServiceSpec{
		Name: "hello",
		Roles: []RoleSpec{{
			Name: "web", Kind: KindWeb, Runtime: RuntimeProcess,
			Package: "sha256:" + strings.Repeat("ab", 32), Command: []string{"./hello"}, Instances: 3,
			Endpoints: []Endpoint{{Name: "http", Port: 8080}},
			Health:    &HealthCheck{HTTP: &HTTPProbe{Path: "/healthz", Endpoint: "http"}},
		}},
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name   string
		change func(*ServiceSpec)
		want   string // "" means valid
	}{
		{"good", func(s *ServiceSpec) {}, ""},
		{"bad service name", func(s *ServiceSpec) { s.Name = "Hello_World" }, "name: "},
		{"bad kind", func(s *ServiceSpec) { s.Roles[0].Kind = "daemon" }, "roles[0].kind: "},
		{"bad runtime", func(s *ServiceSpec) { s.Roles[0].Runtime = "jvm" }, "roles[0].runtime: "},
		{"no package", func(s *ServiceSpec) { s.Roles[0].Package = "" }, "roles[0].package: "},
		{"folder package on the wire", func(s *ServiceSpec) { s.Roles[0].Package = "./site" }, "roles[0].package: "},
		{"no command", func(s *ServiceSpec) { s.Roles[0].Command = nil }, "roles[0].command: "},
		{"container without image", func(s *ServiceSpec) { s.Roles[0].Runtime = RuntimeContainer }, "roles[0].image: "},
		{"too many instances", func(s *ServiceSpec) { s.Roles[0].Instances = 5000 }, "roles[0].instances: "},
		{"negative cpu", func(s *ServiceSpec) { s.Roles[0].Size.CPU = -1 }, "roles[0].size.cpu: "},
		{"bad port", func(s *ServiceSpec) { s.Roles[0].Endpoints[0].Port = 70000 }, "roles[0].endpoints[0].port: 70000 is not a port"},
		{"bad protocol", func(s *ServiceSpec) { s.Roles[0].Endpoints[0].Protocol = "udp" }, "roles[0].endpoints[0].protocol: "},
		{"web without endpoint", func(s *ServiceSpec) { s.Roles[0].Endpoints = nil; s.Roles[0].Health = nil }, "roles[0].endpoints: "},
		{"probe of unknown endpoint", func(s *ServiceSpec) { s.Roles[0].Health.HTTP.Endpoint = "admin" }, "roles[0].health.http.endpoint: "},
		{"two probes", func(s *ServiceSpec) { s.Roles[0].Health.TCP = &TCPProbe{Endpoint: "http"} }, "roles[0].health: needs exactly one"},
		{"persistent process", func(s *ServiceSpec) { s.Roles[0].Persistence = Persistent }, ""},
		{"persistent container role of three with drives", func(s *ServiceSpec) {
			s.Roles[0].Runtime, s.Roles[0].Image, s.Roles[0].Persistence = RuntimeContainer, "app", Persistent
			s.Roles[0].Drives = []RoleDrive{{Name: "data", Size: 1 << 30, Mount: "/data"}, {Name: "logs", Size: 64 << 20, Mount: "/var/log/app"}}
		}, ""},
		{"process drive without mount", func(s *ServiceSpec) { s.Roles[0].Drives = []RoleDrive{{Name: "data", Size: 1 << 30}} }, ""},
		{"container drive without mount", func(s *ServiceSpec) {
			s.Roles[0].Runtime, s.Roles[0].Image = RuntimeContainer, "app"
			s.Roles[0].Drives = []RoleDrive{{Name: "data", Size: 1 << 30}}
		}, "roles[0].drives[0].mount: a container role's drive needs"},
		{"drive mounted on /", func(s *ServiceSpec) { s.Roles[0].Drives = []RoleDrive{{Name: "data", Size: 1 << 30, Mount: "/"}} }, "roles[0].drives[0].mount: a drive cannot be mounted on /"},
		{"relative drive mount", func(s *ServiceSpec) { s.Roles[0].Drives = []RoleDrive{{Name: "data", Size: 1 << 30, Mount: "data"}} }, "roles[0].drives[0].mount: \"data\" is not an absolute path"},
		{"drive too small", func(s *ServiceSpec) { s.Roles[0].Drives = []RoleDrive{{Name: "data", Size: 1 << 20}} }, "roles[0].drives[0].size: a drive needs at least 16Mi"},
		{"drive of partial pages", func(s *ServiceSpec) { s.Roles[0].Drives = []RoleDrive{{Name: "data", Size: 64<<20 + 100}} }, "roles[0].drives[0].size: 67108964 bytes is not a whole number"},
		{"drive named twice", func(s *ServiceSpec) {
			s.Roles[0].Drives = []RoleDrive{{Name: "data", Size: 1 << 30}, {Name: "data", Size: 1 << 30}}
		}, "roles[0].drives[1].name: \"data\" is used twice"},
		{"bad drive name", func(s *ServiceSpec) { s.Roles[0].Drives = []RoleDrive{{Name: "Data", Size: 1 << 30}} }, "roles[0].drives[0].name: \"Data\" is not a drive name"},
		{"drives on the vm runtime", func(s *ServiceSpec) {
			s.Roles[0].Runtime, s.Roles[0].Image = RuntimeVM, "ubuntu"
			s.Roles[0].Drives = []RoleDrive{{Name: "data", Size: 1 << 30, Mount: "/data"}}
		}, ""},
		{"extensions on the vm runtime", func(s *ServiceSpec) {
			s.Roles[0].Runtime, s.Roles[0].Image = RuntimeVM, "ubuntu"
			s.Roles[0].Extensions = []ExtensionRef{{Name: "custom-script", Settings: map[string]any{"script": "true"}}}
		}, ""},
		{"reserved setting", func(s *ServiceSpec) { s.Roles[0].Settings = map[string]string{"WEFT_NODE": "x"} }, "roles[0].settings.WEFT_NODE: "},
		{"duplicate role", func(s *ServiceSpec) { s.Roles = append(s.Roles, s.Roles[0]) }, "roles[1].name: \"web\" is used by another role"},
		{"upgrade domains", func(s *ServiceSpec) { s.UpgradeDomains = 50 }, "upgradeDomains: "},
		{"no roles", func(s *ServiceSpec) { s.Roles = nil }, "roles: "},
		{"model too large", func(s *ServiceSpec) {
			s.Roles[0].Settings = map[string]string{"SMALL": "x", "CERT": strings.Repeat("c", MaxModelBytes)}
		}, fmt.Sprintf("roles[0].settings.CERT: %d bytes of the model's", MaxModelBytes+2)},
		{"large but not too large", func(s *ServiceSpec) {
			s.Roles[0].Settings = map[string]string{"CERT": strings.Repeat("c", MaxModelBytes-1000)}
		}, ""},
		{"bad role name", func(s *ServiceSpec) { s.Roles[0].Name = "-web" }, "roles[0].name: "},
		{"bad endpoint name", func(s *ServiceSpec) { s.Roles[0].Endpoints[0].Name = "HTTP"; s.Roles[0].Health = nil }, "roles[0].endpoints[0].name: "},
		{"malformed digest", func(s *ServiceSpec) { s.Roles[0].Package = "sha256:abc" }, "roles[0].package: "},
		{"vm kind on process", func(s *ServiceSpec) { s.Roles[0].Kind = KindVM }, "roles[0].runtime: a vm role needs the vm runtime"},
		{"negative instances", func(s *ServiceSpec) { s.Roles[0].Instances = -1 }, "roles[0].instances: "},
		{"negative memory", func(s *ServiceSpec) { s.Roles[0].Size.Memory = -1 }, "roles[0].size.memory: "},
		{"bad persistence", func(s *ServiceSpec) { s.Roles[0].Persistence = "sometimes" }, "roles[0].persistence: "},
		{"persistent vm", func(s *ServiceSpec) {
			s.Roles[0] = RoleSpec{Name: "db", Kind: KindVM, Runtime: RuntimeVM, Image: "ubuntu", Instances: 1, Persistence: Persistent,
				Disks: []DiskSpec{{Name: "os", Size: 1 << 30, Blob: "db-os"}}}
		}, ""},
		{"persistent vm role of three with drives", func(s *ServiceSpec) {
			s.Roles[0] = RoleSpec{Name: "db", Kind: KindVM, Runtime: RuntimeVM, Image: "ubuntu", Instances: 3, Persistence: Persistent,
				Drives: []RoleDrive{{Name: "data", Size: 1 << 30, Mount: "/var/lib/db"}}}
		}, ""},
		{"persistent vm role of two without drives", func(s *ServiceSpec) {
			s.Roles[0] = RoleSpec{Name: "db", Kind: KindVM, Runtime: RuntimeVM, Image: "ubuntu", Instances: 2, Persistence: Persistent}
		}, ""},
		{"two instances on the role's disks", func(s *ServiceSpec) {
			s.Roles[0] = RoleSpec{Name: "db", Kind: KindVM, Runtime: RuntimeVM, Image: "ubuntu", Instances: 2, Persistence: Persistent,
				Disks: []DiskSpec{{Name: "os", Size: 1 << 30, Blob: "db-os"}}}
		}, "roles[0].instances: a vm role with disks (weft vm create) runs at most one instance"},
		{"vm drive without mount", func(s *ServiceSpec) {
			s.Roles[0] = RoleSpec{Name: "db", Kind: KindVM, Runtime: RuntimeVM, Image: "ubuntu", Instances: 2,
				Drives: []RoleDrive{{Name: "data", Size: 1 << 30}}}
		}, "roles[0].drives[0].mount: a vm role's drive needs the folder it is mounted on"},
		{"vm drive mounted on /", func(s *ServiceSpec) {
			s.Roles[0] = RoleSpec{Name: "db", Kind: KindVM, Runtime: RuntimeVM, Image: "ubuntu", Instances: 2,
				Drives: []RoleDrive{{Name: "data", Size: 1 << 30, Mount: "/"}}}
		}, "roles[0].drives[0].mount: a drive cannot be mounted on /"},
		{"guest port on a process role", func(s *ServiceSpec) { s.Roles[0].Endpoints[0].GuestPort = 80 }, "roles[0].endpoints[0].guestPort: "},
		{"port used twice", func(s *ServiceSpec) {
			s.Roles = append(s.Roles, RoleSpec{Name: "api", Kind: KindWeb, Runtime: RuntimeContainer, Image: "x",
				Endpoints: []Endpoint{{Name: "http", Port: 8080}}})
		}, "roles[1].endpoints[0].port: 8080 is also used"},
		{"zero port: picked by the controller", func(s *ServiceSpec) { s.Roles[0].Endpoints[0].Port = 0 }, ""},
		{"negative port", func(s *ServiceSpec) { s.Roles[0].Endpoints[0].Port = -1 }, "roles[0].endpoints[0].port: -1 is not a port"},
		{"no probe", func(s *ServiceSpec) { s.Roles[0].Health.HTTP = nil }, "roles[0].health: needs exactly one"},
		{"exec probe", func(s *ServiceSpec) { s.Roles[0].Health.HTTP = nil; s.Roles[0].Health.Exec = []string{"true"} }, ""},
		{"relative probe path", func(s *ServiceSpec) { s.Roles[0].Health.HTTP.Path = "healthz" }, "roles[0].health.http.path: "},
		{"tcp probe of unknown endpoint", func(s *ServiceSpec) {
			s.Roles[0].Health.HTTP = nil
			s.Roles[0].Health.TCP = &TCPProbe{Endpoint: "db"}
		}, "roles[0].health.tcp.endpoint: "},
		{"negative interval", func(s *ServiceSpec) { s.Roles[0].Health.Interval = -1 }, "roles[0].health.interval: "},
		{"negative timeout", func(s *ServiceSpec) { s.Roles[0].Health.Timeout = -1 }, "roles[0].health.timeout: "},
		{"too many failures", func(s *ServiceSpec) { s.Roles[0].Health.Failures = 101 }, "roles[0].health.failures: "},
		{"bad setting name", func(s *ServiceSpec) { s.Roles[0].Settings = map[string]string{"1X": "x"} }, "roles[0].settings.1X: "},
		{"worker without endpoints", func(s *ServiceSpec) {
			s.Roles[0].Kind = KindWorker
			s.Roles[0].Endpoints = nil
			s.Roles[0].Health = &HealthCheck{Exec: []string{"true"}}
		}, ""},
		{"problems joined", func(s *ServiceSpec) { s.Name = ""; s.Roles[0].Instances = -1 }, "name: \"\" is not a name (lowercase letters, digits and dashes, starting with a letter, up to 40); roles[0].instances: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := goodSpec()
			tc.change(&s)
			s.SetDefaults()
			err := s.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid model refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want an error naming %q", tc.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v is not ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestSetDefaults(t *testing.T) {
	s := goodSpec()
	s.SetDefaults()
	r := s.Roles[0]
	if s.UpgradeDomains != DefaultUpgradeDomains || r.Persistence != Ephemeral || r.Endpoints[0].Protocol != ProtocolHTTP ||
		r.Size.CPU != 0.1 || r.Size.Memory != 64<<20 {
		t.Errorf("defaults not filled: %+v", s)
	}
	if h := r.Health; h.Interval != Duration(time.Second) || h.Timeout != Duration(time.Second) || h.Failures != 3 {
		t.Errorf("health defaults not filled: %+v", h)
	}
	s.Roles[0].Health = nil
	s.SetDefaults()
	if s.Roles[0].Health != nil {
		t.Errorf("SetDefaults made a health check")
	}
}

func TestValidateLocalAcceptsFolders(t *testing.T) {
	s := goodSpec()
	s.Roles[0].Package = "./site"
	s.SetDefaults()
	if err := s.ValidateLocal(); err != nil {
		t.Errorf("ValidateLocal refused a package folder: %v", err)
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]Bytes{"128Mi": 128 << 20, "1Gi": 1 << 30, "512M": 512e6, "4096": 4096, "0.5Gi": 512 << 20} {
		got, err := ParseBytes(in)
		if err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "lots", "-1Mi", "12Qi"} {
		if _, err := ParseBytes(bad); err == nil {
			t.Errorf("ParseBytes(%q) accepted", bad)
		}
	}
}

// String is for people and may round; MarshalText is exact and reads back.
func TestBytesText(t *testing.T) {
	for _, tc := range []struct {
		b          Bytes
		str, marsh string
	}{
		{0, "0", "0"},
		{4096, "4Ki", "4Ki"},
		{1000, "1000", "1000"},
		{128 << 20, "128Mi", "128Mi"},
		{1536 << 20, "1.5Gi", "1536Mi"},
		{24683620 << 10, "23.5Gi", "24683620Ki"},
		{1<<30 + 1, "1.0Gi", "1073741825"},
	} {
		text, _ := tc.b.MarshalText()
		if tc.b.String() != tc.str || string(text) != tc.marsh {
			t.Errorf("Bytes(%d): String %q, MarshalText %q; want %q, %q", int64(tc.b), tc.b.String(), text, tc.str, tc.marsh)
		}
		var back Bytes
		if err := back.UnmarshalText(text); err != nil || back != tc.b {
			t.Errorf("Bytes(%d) read back as %d, %v", int64(tc.b), int64(back), err)
		}
	}
}

package api

import (
	"errors"
	"strings"
	"testing"
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
		{"persistent process", func(s *ServiceSpec) { s.Roles[0].Persistence = Persistent }, "roles[0].persistence: "},
		{"reserved setting", func(s *ServiceSpec) { s.Roles[0].Settings = map[string]string{"WEFT_NODE": "x"} }, "roles[0].settings.WEFT_NODE: "},
		{"duplicate role", func(s *ServiceSpec) { s.Roles = append(s.Roles, s.Roles[0]) }, "roles[1].name: \"web\" is used by another role"},
		{"upgrade domains", func(s *ServiceSpec) { s.UpgradeDomains = 50 }, "upgradeDomains: "},
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

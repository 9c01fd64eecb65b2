package servicemodel

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/weftcloud/weft/api"
)

var digest = "sha256:" + strings.Repeat("0f", 32)

const good = `name: hello
upgradeDomains: 3
roles:
  - name: web
    kind: web
    runtime: process
    package: PKG
    command: ["./server", "--flag"]
    instances: 3
    size: {cpu: 0.25, memory: 128Mi}
    endpoints:
      - {name: http, protocol: http, port: 8080}
    health:
      http: {path: /healthz, endpoint: http}
      interval: 2s
    settings: {GREETING: hello, PORT: 80}
    liveSettings: true
    onStop: ["./server", "--drain"]
    stopNotice: 30s
    stopExtension: 1m
    stopGrace: 20s
  - name: worker
    kind: worker
    runtime: container
    image: busybox
    instances: 1
`

func TestParse(t *testing.T) {
	spec, err := Parse([]byte(strings.Replace(good, "PKG", digest, 1)))
	if err != nil {
		t.Fatal(err)
	}
	want := api.ServiceSpec{
		Name: "hello", UpgradeDomains: 3,
		Roles: []api.RoleSpec{{
			Name: "web", Kind: "web", Runtime: "process", Package: digest,
			Command: []string{"./server", "--flag"}, Instances: 3,
			Size: api.Size{CPU: 0.25, Memory: 128 << 20}, Persistence: "ephemeral",
			Endpoints: []api.Endpoint{{Name: "http", Protocol: "http", Port: 8080}},
			Health: &api.HealthCheck{
				HTTP:     &api.HTTPProbe{Path: "/healthz", Endpoint: "http"},
				Interval: api.Duration(2 * time.Second), Timeout: api.Duration(time.Second), Failures: 3,
			},
			Settings:     map[string]string{"GREETING": "hello", "PORT": "80"},
			LiveSettings: true, OnStop: []string{"./server", "--drain"},
			StopNotice: api.Duration(30 * time.Second), StopExtension: api.Duration(time.Minute), StopGrace: api.Duration(20 * time.Second),
		}, {
			Name: "worker", Kind: "worker", Runtime: "container", Image: "busybox", Instances: 1,
			Size: api.Size{CPU: 0.1, Memory: 64 << 20}, Persistence: "ephemeral",
		}},
	}
	if diff := cmp.Diff(want, spec); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
}

func TestParseErrors(t *testing.T) {
	base := strings.Replace(good, "PKG", digest, 1)
	cases := []struct {
		name, old, new, want string
	}{
		{"unknown field", "    health:\n", "    helth:\n", "roles[0].helth: line 13: unknown field"},
		{"unknown top-level field", "name: hello\n", "name: hello\nreplicas: 3\n", "replicas: line 2: unknown field"},
		{"type error", "instances: 3", `instances: "many"`, `roles[0].instances: line 9: cannot use "many" as a number`},
		{"float instances", "instances: 3", "instances: 2.5", `roles[0].instances: line 9: cannot use "2.5" as a number`},
		{"bad size", "memory: 128Mi", "memory: lots", "roles[0].size.memory: line 10: invalid size"},
		{"bad duration", "interval: 2s", "interval: soon", "roles[0].health.interval: line 15: invalid duration"},
		{"notice too long", "stopNotice: 30s", "stopNotice: 2h", "roles[0].stopNotice: 2h0m0s is out of range (0-1h0m0s)"},
		{"negative grace", "stopGrace: 20s", "stopGrace: -1s", "roles[0].stopGrace: -1s is out of range (0-1h0m0s)"},
		{"empty onStop", `onStop: ["./server", "--drain"]`, "onStop: []", "roles[0].onStop: needs a program to run"},
		{"list expected", `command: ["./server", "--flag"]`, "command: {a: b}", "roles[0].command: line 8: want a list"},
		{"mapping expected", "size: {cpu: 0.25, memory: 128Mi}", "size: big", `roles[0].size: line 10: want a mapping, not "big"`},
		{"duplicate key", "    instances: 3\n", "    instances: 3\n    instances: 4\n", "roles[0].instances: line 10: appears twice"},
		{"validation", "port: 8080", "port: 70000", "roles[0].endpoints[0].port: 70000 is not a port (1-65535, or 0 to have one picked)"},
		{"folder refused by Parse", digest, "./site", "roles[0].package: "},
		{"syntax", "name: hello", "name: [hello", "line"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := strings.Replace(base, tc.old, tc.new, 1)
			if in == base {
				t.Fatalf("test case did not change the model")
			}
			_, err := Parse([]byte(in))
			if err == nil {
				t.Fatalf("accepted, want %q", tc.want)
			}
			if !errors.Is(err, api.ErrInvalid) {
				t.Errorf("error %v is not ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestParseCollectsEveryProblem(t *testing.T) {
	_, err := Parse([]byte("name: x\nroles:\n  - name: a\n    helth: 1\n    instances: many\n"))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"roles[0].helth: line 4: unknown field", "roles[0].instances: line 5:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

// A syntax error names the line at fault. For a line indented to fit no
// block, the yaml package itself names the line where the enclosing block
// starts (line 2 in most of these).
func TestSyntaxErrorLines(t *testing.T) {
	const head = "name: x\nroles:\n  - name: web\n    kind: web\n"
	cases := []struct{ name, model, want string }{
		{"key indented too little", head + "   runtime: process\n    instances: 2\n",
			"line 5: did not find expected '-' indicator (check this line's indentation)"},
		{"key back at the list's indent", head + "  runtime: process\n",
			"line 5: did not find expected '-' indicator (check this line's indentation)"},
		{"key indented too much", head + "      runtime: process\n    instances: 2\n",
			"line 5: mapping values are not allowed in this context"},
		{"nested key indented too little", head + "    size:\n      cpu: 1\n     memory: 64Mi\n    instances: 2\n",
			"line 7: did not find expected key (check this line's indentation)"},
		{"a tab", head + "\truntime: process\n",
			"line 5: found a tab character that violates indentation"},
		{"unclosed list", head + "    command: [a, b\n    instances: 2\n",
			"line 5: did not find expected ',' or ']'"},
		{"top-level key indented", "name: x\n  roles:\n  - name: web\n",
			"line 2: mapping values are not allowed in this context"},
		{"bad indent far from its block", head + "    instances: 1\n    size:\n      cpu: 1\n  - name: b\n    kind: web\n   command: [x]\n",
			"line 10: did not find expected '-' indicator (check this line's indentation)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.model))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, api.ErrInvalid) {
				t.Errorf("error %v is not ErrInvalid", err)
			}
			if err.Error() != tc.want {
				t.Errorf("error %q\nwant  %q", err, tc.want)
			}
		})
	}
}

func TestParseEmpty(t *testing.T) {
	if _, err := Parse(nil); err == nil {
		t.Error("empty model accepted")
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "site"), 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "service.yaml")
	if err := os.WriteFile(file, []byte(strings.Replace(good, "PKG", "./site", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	spec, dirs, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[int]string{0: filepath.Join(dir, "site")}, dirs); diff != "" {
		t.Errorf("dirs (-want +got):\n%s", diff)
	}
	if spec.Roles[0].Package != "./site" || spec.UpgradeDomains != 3 {
		t.Errorf("spec = %+v", spec)
	}

	// A digest is passed through; a missing folder or a file is refused.
	if err := os.WriteFile(file, []byte(strings.Replace(good, "PKG", digest, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, dirs, err := Load(file); err != nil || len(dirs) != 0 {
		t.Errorf("Load with a digest = %v, %v", dirs, err)
	}
	for _, pkg := range []string{"./missing", "./service.yaml"} {
		if err := os.WriteFile(file, []byte(strings.Replace(good, "PKG", pkg, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := Load(file); err == nil || !strings.Contains(err.Error(), "roles[0].package: ") {
			t.Errorf("Load with package %s: err = %v", pkg, err)
		}
	}
}

// The example that opens docs/service-model.md is a valid model.
func TestDocExampleParses(t *testing.T) {
	doc, err := os.ReadFile("../../docs/service-model.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```yaml\n")
	example, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/service-model.md has no yaml example")
	}
	spec, err := Parse([]byte(strings.ReplaceAll(example, "./package", digest)))
	if err != nil {
		t.Fatalf("the example does not parse: %v", err)
	}
	if len(spec.Roles) != 2 || spec.Roles[1].Command[0] != "sh" {
		t.Errorf("parsed %+v", spec)
	}
}

// TestParseExtensions: a role's extensions take free-form settings (any
// YAML that is JSON), and the model alone refuses what it can name.
func TestParseExtensions(t *testing.T) {
	model := strings.Replace(good, "    stopGrace: 20s\n", `    stopGrace: 20s
    extensions:
      - name: custom-script
        version: "1.0"
        settings:
          commandToExecute: echo hi
          fileUris: [http://host/a.sh]
          timestamp: 3
        protectedSettings: {commandToExecute: "echo s3cret"}
`, 1)
	spec, err := Parse([]byte(strings.Replace(model, "PKG", digest, 1)))
	if err != nil {
		t.Fatal(err)
	}
	want := []api.ExtensionRef{{Name: "custom-script", Version: "1.0",
		Settings:          map[string]any{"commandToExecute": "echo hi", "fileUris": []any{"http://host/a.sh"}, "timestamp": 3},
		ProtectedSettings: map[string]any{"commandToExecute": "echo s3cret"}}}
	if diff := cmp.Diff(want, spec.Roles[0].Extensions); diff != "" {
		t.Errorf("extensions (-want +got):\n%s", diff)
	}
	for _, tc := range []struct{ old, new, want string }{
		{"name: custom-script", "name: Custom", `roles[0].extensions[0].name: "Custom" is not an extension name`},
		{`version: "1.0"`, `version: "1.0-beta"`, `roles[0].extensions[0].version: "1.0-beta" is not a version`},
		{"timestamp: 3", "{1: 2}: x", "roles[0].extensions[0].settings: line"},
		{"- name: custom-script", "- nam: custom-script", "roles[0].extensions[0].nam: line"},
	} {
		in := strings.Replace(strings.Replace(model, "PKG", digest, 1), tc.old, tc.new, 1)
		if _, err := Parse([]byte(in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s -> %s: %v, want %q", tc.old, tc.new, err, tc.want)
		}
	}
	// Roles of every runtime run extensions.
	in := strings.Replace(strings.Replace(model, "PKG", digest, 1), "    image: busybox\n", "    image: busybox\n    extensions: [{name: custom-script}]\n", 1)
	if _, err := Parse([]byte(in)); err != nil {
		t.Errorf("a container role with extensions: %v", err)
	}
	in = strings.Replace(in, "runtime: container", "runtime: vm", 1)
	if _, err := Parse([]byte(in)); err != nil {
		t.Errorf("a vm role with extensions: %v", err)
	}
}

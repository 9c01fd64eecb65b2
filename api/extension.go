package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Extensions are versioned packages of handlers that the node agent runs
// inside an instance: install, enable, then disable, update and uninstall
// as the extension's settings change or it is removed. A published
// extension is an archive (the package format) with ExtensionManifestFile
// at its root; built-in extensions ship in the binary.

// ExtensionManifestFile is the manifest's name at the archive's root.
const ExtensionManifestFile = "extension.json"

// Extension statuses, per extension and instance.
const (
	ExtensionTransitioning = "transitioning" // its handlers run
	ExtensionSuccess       = "success"       // its last handler exited 0
	ExtensionError         = "error"         // a handler failed; Message says which and why
)

// Setting types an extension's schema may give.
var settingTypes = []string{"string", "number", "boolean", "object", "array"}

// Limits of an extension.
const (
	// MaxExtensionOutput bounds the handler output kept in a status.
	MaxExtensionOutput = 4 << 10
	// MaxExtensionsPerRole bounds a role's extensions.
	MaxExtensionsPerRole = 20
	// MaxManifestBytes bounds extension.json.
	MaxManifestBytes = 64 << 10
)

// ExtensionManifest is what extension.json says.
type ExtensionManifest struct {
	Name        string `json:"name"`
	Version     string `json:"version"`
	Description string `json:"description,omitempty"`
	// Handlers are commands, run in the extension's folder with the
	// instance's environment, WEFT_EXTENSION_DIR and
	// WEFT_EXTENSION_SETTINGS (the settings file) set. A program named
	// with a slash ("./install.sh") is the extension's own.
	Handlers ExtensionHandlers `json:"handlers"`
	Settings ExtensionSchema   `json:"settings,omitzero"`
}

// ExtensionHandlers are the commands of an extension; Enable is required,
// a handler left out does nothing.
type ExtensionHandlers struct {
	Install   []string `json:"install,omitempty"`
	Enable    []string `json:"enable"`
	Disable   []string `json:"disable,omitempty"`
	Update    []string `json:"update,omitempty"`
	Uninstall []string `json:"uninstall,omitempty"`
}

// ExtensionSchema declares an extension's settings: public ones are
// shown by the API; protected ones are encrypted at rest, never shown,
// and reach only the node running the instance.
type ExtensionSchema struct {
	Public    map[string]SettingSchema `json:"public,omitempty"`
	Protected map[string]SettingSchema `json:"protected,omitempty"`
}

// SettingSchema declares one setting.
type SettingSchema struct {
	Type        string `json:"type"` // string, number, boolean, object or array
	Required    bool   `json:"required,omitempty"`
	Description string `json:"description,omitempty"`
}

// Extension is a published (or built-in) extension.
type Extension struct {
	ExtensionManifest
	Tenant string `json:"tenant,omitempty"` // empty for built-in ones
	// Package is the archive's digest (a package, fetched by nodes like a
	// role's); empty for built-in extensions.
	Package     string    `json:"package,omitempty"`
	Size        int64     `json:"size,omitempty"`
	BuiltIn     bool      `json:"builtIn,omitempty"`
	PublishedAt time.Time `json:"publishedAt,omitzero"`
}

// ExtensionRef is an extension a role's instances get.
type ExtensionRef struct {
	Name string `json:"name" yaml:"name"`
	// Version is the one to run; empty at deploy means the newest, which
	// the controller pins here.
	Version  string         `json:"version,omitempty" yaml:"version,omitempty"`
	Settings map[string]any `json:"settings,omitempty" yaml:"settings,omitempty"`
	// ProtectedSettings are sent at deploy only: the controller encrypts
	// them into Sealed and keeps them nowhere else.
	ProtectedSettings map[string]any `json:"protectedSettings,omitempty" yaml:"protectedSettings,omitempty"`
	// Set by the controller: the package to fetch, and the protected
	// settings encrypted with the servers' key.
	Package string `json:"package,omitempty" yaml:"-"`
	Sealed  string `json:"sealed,omitempty" yaml:"-"`
}

// ExtensionStatus is how one extension fares on one instance.
type ExtensionStatus struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Status  string `json:"status"` // ExtensionTransitioning, ExtensionSuccess, ExtensionError
	// Handler is the last handler run (install, enable, update, ...).
	Handler  string `json:"handler,omitempty"`
	ExitCode int    `json:"exitCode,omitempty"`
	Message  string `json:"message,omitempty"`
	// Output is the end of the last handler's output (at most
	// MaxExtensionOutput bytes).
	Output    string    `json:"output,omitempty"`
	UpdatedAt time.Time `json:"updatedAt,omitzero"`
	// Figures are the guest's latest figures, reported by the built-in
	// monitor extension while it is enabled.
	Figures *GuestFigures `json:"figures,omitempty"`
}

// GuestFigures are an instance's CPU, memory and disk figures: a VM
// guest's as its guest agent reads them (/proc/stat, /proc/meminfo, the
// root file system); a process or container instance's from its cgroup
// and its folder on the node.
type GuestFigures struct {
	// CPUPercent is how busy the instance was since the previous sample
	// against its CPUs (100 is all of them busy): a VM's CPUs, or a
	// process or container instance's CPU quota (the node's CPUs when it
	// has none).
	CPUPercent float64 `json:"cpuPercent"`
	// CPUs is the VM's CPUs, or the CPU quota rounded up.
	CPUs int `json:"cpus"`
	// Load1 is a VM guest's 1-minute load average; absent for process
	// and container instances (a cgroup has none).
	Load1 *float64 `json:"load1,omitempty"`
	// MemoryTotal is the VM's memory, or the instance's memory limit (the
	// node's memory when it has none).
	MemoryTotal Bytes `json:"memoryTotal"`
	// MemoryUsed is a VM's total less what is available, or the working
	// set of the instance's cgroup (less inactive file cache).
	MemoryUsed Bytes `json:"memoryUsed"`
	// DiskTotal and DiskUsed are a VM's root file system; for process and
	// container instances, the bytes in the instance's folder on the node
	// (its package or writable layer and what it wrote) and the size of
	// the file system holding it.
	DiskTotal Bytes     `json:"diskTotal"`
	DiskUsed  Bytes     `json:"diskUsed"`
	SampledAt time.Time `json:"sampledAt"`
}

var versionRE = regexp.MustCompile(`^[0-9]{1,9}(\.[0-9]{1,9}){0,3}$`)

// ValidExtensionVersion reports whether v is a version: one to four
// dot-separated numbers ("1", "1.2", "2.0.1").
func ValidExtensionVersion(v string) bool { return versionRE.MatchString(v) }

// CompareExtensionVersions orders two valid versions numerically, a
// missing part counting as 0: -1, 0 or 1.
func CompareExtensionVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(pa), len(pb)); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// ParseExtensionManifest reads extension.json strictly (unknown fields are
// refused) and checks it. The error is an *Error with CodeInvalid naming
// every problem by its field.
func ParseExtensionManifest(data []byte) (ExtensionManifest, error) {
	var m ExtensionManifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, Errorf(CodeInvalid, "%s: %v", ExtensionManifestFile, err)
	}
	if dec.More() {
		return m, Errorf(CodeInvalid, "%s: more than one JSON value", ExtensionManifestFile)
	}
	return m, m.Validate()
}

// Validate checks a manifest, naming each problem's field.
func (m *ExtensionManifest) Validate() error {
	var p problems
	at := ExtensionManifestFile + ": "
	if !nameRE.MatchString(m.Name) {
		p.add(at+"name", "%q is not a name (lowercase letters, digits and dashes, starting with a letter, up to 40)", m.Name)
	}
	if !ValidExtensionVersion(m.Version) {
		p.add(at+"version", "%q is not a version (one to four dot-separated numbers, such as 1.0 or 2.1.3)", m.Version)
	}
	h := m.Handlers
	if len(h.Enable) == 0 {
		p.add(at+"handlers.enable", "the enable handler is required (a command, such as [\"./enable.sh\"])")
	}
	for name, cmd := range map[string][]string{"install": h.Install, "enable": h.Enable, "disable": h.Disable, "update": h.Update, "uninstall": h.Uninstall} {
		if len(cmd) > 0 && strings.TrimSpace(cmd[0]) == "" {
			p.add(at+"handlers."+name, "the command's program is empty")
		}
	}
	for _, s := range []struct {
		field  string
		schema map[string]SettingSchema
	}{{"settings.public", m.Settings.Public}, {"settings.protected", m.Settings.Protected}} {
		for _, k := range sortedKeys(s.schema) {
			if !settingRE.MatchString(k) {
				p.add(at+s.field+"."+k, "%q is not a setting name (letters, digits and underscores, not starting with a digit)", k)
			}
			if !slices.Contains(settingTypes, s.schema[k].Type) {
				p.add(at+s.field+"."+k+".type", "%q is not one of %s", s.schema[k].Type, strings.Join(settingTypes, ", "))
			}
		}
	}
	slices.Sort(p)
	return p.err()
}

// CheckSettings checks a role's settings for an extension against its
// schema: every setting declared, of its type, and every required one
// given. at is the field path of the settings ("roles[0].extensions[1]").
func (m *ExtensionManifest) CheckSettings(at string, ref ExtensionRef) error {
	var p problems
	checkSettings(at+".settings", m.Settings.Public, ref.Settings, &p)
	checkSettings(at+".protectedSettings", m.Settings.Protected, ref.ProtectedSettings, &p)
	return p.err()
}

func checkSettings(at string, schema map[string]SettingSchema, values map[string]any, p *problems) {
	for _, k := range sortedKeys(values) {
		s, ok := schema[k]
		if !ok {
			p.add(at+"."+k, "the extension declares no such setting (it has: %s)", strings.Join(sortedKeys(schema), ", "))
			continue
		}
		if got := jsonType(values[k]); got != s.Type {
			p.add(at+"."+k, "is a %s; the extension wants a %s", got, s.Type)
		}
	}
	for _, k := range sortedKeys(schema) {
		if _, ok := values[k]; !ok && schema[k].Required {
			p.add(at+"."+k, "is required by the extension")
		}
	}
}

// jsonType names the JSON type of a decoded value (YAML's integers too).
func jsonType(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case bool:
		return "boolean"
	case float64, float32, int, int64, uint64, json.Number:
		return "number"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// validateExtensions checks a role's extension list as far as the model
// alone says (the controller checks that they exist at deploy).
func validateExtensions(at string, r *RoleSpec, p *problems) {
	if len(r.Extensions) == 0 {
		return
	}
	if len(r.Extensions) > MaxExtensionsPerRole {
		p.add(at+".extensions", "%d extensions; a role has at most %d", len(r.Extensions), MaxExtensionsPerRole)
	}
	seen := map[string]bool{}
	for i, e := range r.Extensions {
		f := fmt.Sprintf("%s.extensions[%d]", at, i)
		switch {
		case !nameRE.MatchString(e.Name):
			p.add(f+".name", "%q is not an extension name", e.Name)
		case seen[e.Name]:
			p.add(f+".name", "%s is listed twice", e.Name)
		}
		seen[e.Name] = true
		if e.Version != "" && !ValidExtensionVersion(e.Version) {
			p.add(f+".version", "%q is not a version (one to four dot-separated numbers, such as 1.0)", e.Version)
		}
	}
}

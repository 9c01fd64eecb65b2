package extensions

import "github.com/weftcloud/weft/api"

// Built-in extensions ship in the binary: the node agent runs them
// itself (internal/agent), so they have no package, and their handlers
// name the agent's own code rather than a program.
const (
	// CustomScript fetches files (blob URLs with a SAS, or any HTTP
	// URL), writes an inline script, runs a command in the instance and
	// reports its output and exit code.
	CustomScript = "custom-script"
	// BackgroundInfo writes the instance's identity, addresses, size and
	// location to background-info.txt in its folder, and reports it as
	// its output.
	BackgroundInfo = "background-info"
	// Monitor samples an instance's CPU, memory and disk figures every
	// interval while it is enabled (a VM's through its guest agent, a
	// process or container instance's from its cgroup and folder); they
	// show in its status (Figures) and in the node agent's metrics.
	Monitor = "monitor"
)

// BuiltInHandler is the program every handler of a built-in extension
// names: the agent recognises it and runs the extension's Go code.
const BuiltInHandler = "weft:builtin"

func builtInManifests() []api.ExtensionManifest {
	builtin := []string{BuiltInHandler}
	return []api.ExtensionManifest{{
		Name:        CustomScript,
		Version:     "1.0",
		Description: "Downloads files (fileUris: blob URLs with a SAS), writes an inline script (script: saved as script.sh), then runs commandToExecute (or the script) in the instance; reports its output and exit code. Any setting may be protected instead.",
		Handlers:    api.ExtensionHandlers{Enable: builtin, Update: builtin},
		Settings: api.ExtensionSchema{
			Public: map[string]api.SettingSchema{
				"commandToExecute": {Type: "string", Description: "run with sh -c in the extension's folder"},
				"script":           {Type: "string", Description: "an inline script, saved as script.sh and run when there is no commandToExecute"},
				"fileUris":         {Type: "array", Description: "URLs to download into the extension's folder first"},
				"timestamp":        {Type: "number", Description: "change it to run the command again with the same settings"},
			},
			Protected: map[string]api.SettingSchema{
				"commandToExecute": {Type: "string", Description: "as the public one, for commands with secrets"},
				"script":           {Type: "string"},
				"fileUris":         {Type: "array", Description: "URLs with a SAS"},
			},
		},
	}, {
		Name:        BackgroundInfo,
		Version:     "1.0",
		Description: "Writes the instance's identity, addresses, size and location to background-info.txt in the extension's folder, and reports them as its output.",
		Handlers:    api.ExtensionHandlers{Enable: builtin, Update: builtin},
	}, {
		Name:        Monitor,
		Version:     "1.0",
		Description: "Samples the instance's CPU, memory and disk figures every interval (a VM's through its guest agent; a process or container instance's from its cgroup and its folder on the node); weft vm show and weft instance show show them and the node agent exports them as metrics (weft_guest_*).",
		Handlers:    api.ExtensionHandlers{Enable: builtin, Update: builtin, Disable: builtin},
		Settings: api.ExtensionSchema{
			Public: map[string]api.SettingSchema{
				"interval": {Type: "number", Description: "seconds between samples (default 60, at least 5)"},
			},
		},
	}}
}

func builtIns() []api.Extension {
	var out []api.Extension
	for _, m := range builtInManifests() {
		out = append(out, api.Extension{ExtensionManifest: m, BuiltIn: true})
	}
	return out
}

func builtIn(name string) (api.Extension, bool) {
	for _, e := range builtIns() {
		if e.Name == name {
			return e, true
		}
	}
	return api.Extension{}, false
}

// IsBuiltIn reports whether the extension is one the agent runs itself.
func IsBuiltIn(name string) bool {
	_, ok := builtIn(name)
	return ok
}

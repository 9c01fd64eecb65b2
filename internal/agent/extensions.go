package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/atomicfile"
	"github.com/weftcloud/weft/internal/driver"
	"github.com/weftcloud/weft/internal/extensions"
)

// Extensions (api.ExtensionRef) run inside an instance once it runs, one
// after another in the role's order, each through the driver's Execer (in
// the instance's cgroups, with its environment). Each has a folder,
// DIR/extensions/NAME (its package unpacked), and its settings in
// DIR/extensions/NAME.settings.json (0600, in the instance's private
// folder; protected settings reach the node open only in the assignment).
// DIR/extensions/state.json records what was applied (versions, and a
// hash of the settings, never the settings), so that:
//   - a new extension gets install, then enable;
//   - a changed version or changed settings get update (or enable when
//     the extension has no update handler), after unpacking the version;
//   - an extension no longer listed gets disable, then uninstall, and its
//     folder is removed;
//   - every fresh start of the instance (a restart in place) runs enable
//     again; a reimage throws the folder away, so all run from install.
//
// The status of each (api.ExtensionStatus) goes to the controller with the
// instance's status.
//
// A container sees the folder bound in at guestExtensionsDir. A VM sees
// nothing of the node's files: the agent copies the extension's folder
// and its settings file into the guest, under the same
// guestExtensionsDir, through the driver (driver.Copier: the guest
// agent's port), and the guest agent runs the handler there as it runs
// an exec. A published extension's folder is copied once per version
// (again after the instance starts afresh, whose guest may have lost it);
// a built-in's, which its handlers fill (custom-script's downloads and
// script), and the settings file before each handler. Removing an
// extension removes both copies.

const (
	extensionsDir = "extensions"
	// guestExtensionsDir is where a container sees its extensions folder
	// (read-only), and where a VM gets its copy: handlers run inside,
	// with paths under it.
	guestExtensionsDir = "/var/lib/weft/extensions"
	extensionsState    = "state.json"
	// handlerTimeout bounds one handler's run.
	handlerTimeout = 10 * time.Minute
	// maxFetchedFile bounds one file custom-script downloads.
	maxFetchedFile = 256 << 20
)

// appliedExtension is what state.json keeps of one extension.
type appliedExtension struct {
	Version  string              `json:"version"`
	Settings string              `json:"settings"` // sha256 of the settings file
	Status   api.ExtensionStatus `json:"status"`
}

// extensionRun is what a pass of the runner is for.
type extensionRun int

const (
	extensionsChanged extensionRun = iota // the assignment changed: apply differences only
	extensionsStarted                     // the instance started afresh: enable again
)

// kickExtensions asks the instance's runner for a pass.
func (in *instance) kickExtensions(why extensionRun) {
	in.mu.Lock()
	if why == extensionsStarted {
		in.extStarted = true
	}
	in.mu.Unlock()
	select {
	case in.extCh <- struct{}{}:
	default:
	}
}

// runExtensions applies the instance's extensions whenever kicked, until
// ctx ends or the instance is done.
func (in *instance) runExtensions(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-in.done:
			return
		case <-in.extCh:
		}
		in.mu.Lock()
		started := in.extStarted
		in.extStarted = false
		stopping := in.stopping
		refs := in.asg.Role.Extensions
		in.mu.Unlock()
		if stopping {
			return
		}
		in.applyExtensions(ctx, refs, started)
	}
}

func (in *instance) extDir() string { return filepath.Join(in.dir, extensionsDir) }

func (in *instance) loadApplied() map[string]appliedExtension {
	applied := map[string]appliedExtension{}
	if err := atomicfile.ReadJSON(filepath.Join(in.extDir(), extensionsState), &applied); err != nil && !errors.Is(err, os.ErrNotExist) {
		in.a.log.Warn("extensions' state unreadable: applying them afresh", "instance", in.id, "err", err)
	}
	return applied
}

// applyExtensions brings the instance's extensions to refs.
func (in *instance) applyExtensions(ctx context.Context, refs []api.ExtensionRef, started bool) {
	in.extMu.Lock()
	defer in.extMu.Unlock()
	if started {
		in.inGuest = nil
	}
	if _, err := os.Stat(in.extDir()); len(refs) == 0 && errors.Is(err, os.ErrNotExist) {
		return // none, now or before
	}
	if err := os.MkdirAll(in.extDir(), 0o700); err != nil {
		in.a.log.Error("extensions folder", "instance", in.id, "err", err)
		return
	}
	applied := in.loadApplied()
	save := func() {
		if err := atomicfile.WriteJSON(filepath.Join(in.extDir(), extensionsState), applied); err != nil {
			in.a.log.Error("save extensions' state", "instance", in.id, "err", err)
		}
	}
	listed := map[string]bool{}
	for _, ref := range refs {
		listed[ref.Name] = true
	}
	// Removed ones first, so what replaces them finds their resources free.
	for name, was := range applied {
		if listed[name] {
			continue
		}
		in.removeExtension(ctx, name, was)
		delete(applied, name)
		save()
	}
	for _, ref := range refs {
		if ctx.Err() != nil {
			return
		}
		was, ok := applied[ref.Name]
		settings, err := settingsFile(ref)
		if err != nil {
			in.setExtStatus(ref, "", api.ExtensionError, 0, "settings: "+err.Error(), "")
			continue
		}
		sum := sha256.Sum256(settings)
		hash := hex.EncodeToString(sum[:])
		var handlers []string
		switch {
		case !ok:
			handlers = []string{"install", "enable"}
		case was.Version != ref.Version || was.Settings != hash:
			handlers = []string{"update"}
		case started || was.Status.Status != api.ExtensionSuccess:
			handlers = []string{"enable"}
		default:
			in.restoreExtStatus(was.Status)
			continue
		}
		st := in.applyExtension(ctx, ref, settings, handlers, ok && was.Version != ref.Version)
		applied[ref.Name] = appliedExtension{Version: ref.Version, Settings: hash, Status: st}
		if st.Status != api.ExtensionSuccess {
			// Run it all again at the next pass, rather than an update
			// that would assume the install worked.
			if !ok {
				delete(applied, ref.Name)
			} else {
				a := applied[ref.Name]
				a.Settings = ""
				applied[ref.Name] = a
			}
		}
		save()
	}
}

// settingsFile is what an extension finds in its settings file.
func settingsFile(ref api.ExtensionRef) ([]byte, error) {
	if ref.Sealed != "" {
		return nil, errors.New("the protected settings did not reach this node open (see the controller's log)")
	}
	return json.MarshalIndent(struct {
		Name              string         `json:"name"`
		Version           string         `json:"version"`
		Settings          map[string]any `json:"settings"`
		ProtectedSettings map[string]any `json:"protectedSettings"`
	}{ref.Name, ref.Version, orEmpty(ref.Settings), orEmpty(ref.ProtectedSettings)}, "", "  ")
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// applyExtension lays out one extension (its package when it is new or
// its version changed, its settings file) and runs handlers in order,
// stopping at the first that fails.
func (in *instance) applyExtension(ctx context.Context, ref api.ExtensionRef, settings []byte, handlers []string, newVersion bool) api.ExtensionStatus {
	dir := filepath.Join(in.extDir(), ref.Name)
	if handlers[0] == "install" || newVersion {
		delete(in.inGuest, ref.Name)
		in.a.removeRoot(dir)
		if ref.Package != "" {
			in.setExtStatus(ref, "download", api.ExtensionTransitioning, 0, "", "")
			if err := in.a.unpack(ctx, ref.Package, dir); err != nil {
				return in.setExtStatus(ref, "download", api.ExtensionError, 0, err.Error(), "")
			}
		} else if err := os.MkdirAll(dir, 0o700); err != nil {
			return in.setExtStatus(ref, "download", api.ExtensionError, 0, err.Error(), "")
		}
	}
	settingsPath := filepath.Join(in.extDir(), ref.Name+".settings.json")
	err := atomicfile.Write(settingsPath, func(f *os.File) error {
		_, err := f.Write(settings) // CreateTemp made it 0600
		return err
	})
	if err != nil {
		return in.setExtStatus(ref, "settings", api.ExtensionError, 0, err.Error(), "")
	}
	var st api.ExtensionStatus
	for _, h := range handlers {
		st = in.runHandler(ctx, ref, dir, settingsPath, h)
		if st.Status != api.ExtensionSuccess {
			break
		}
	}
	return st
}

// handlerCommand is the extension's command for handler, nil when it has
// none. update falls back to enable.
func handlerCommand(m api.ExtensionHandlers, handler string) []string {
	switch handler {
	case "install":
		return m.Install
	case "enable":
		return m.Enable
	case "update":
		if len(m.Update) == 0 {
			return m.Enable
		}
		return m.Update
	case "disable":
		return m.Disable
	case "uninstall":
		return m.Uninstall
	}
	return nil
}

// runHandler runs one handler of ref inside the instance and records its
// status.
func (in *instance) runHandler(ctx context.Context, ref api.ExtensionRef, dir, settingsPath, handler string) api.ExtensionStatus {
	if ref.Package == "" && ref.Name == extensions.Monitor {
		return in.runMonitor(ctx, ref, handler)
	}
	ex, ok := in.drv.(driver.Execer)
	if !ok {
		return in.setExtStatus(ref, handler, api.ExtensionError, 0, "the "+in.drv.Name()+" runtime cannot run extensions", "")
	}
	in.setExtStatus(ref, handler, api.ExtensionTransitioning, 0, "", "")
	var cmd []string
	if ref.Package == "" && extensions.IsBuiltIn(ref.Name) {
		var err error
		if cmd, err = in.builtInCommand(ctx, ref, dir, handler); err != nil {
			return in.setExtStatus(ref, handler, api.ExtensionError, 0, err.Error(), "")
		}
	} else {
		m, err := readManifest(dir)
		if err != nil {
			return in.setExtStatus(ref, handler, api.ExtensionError, 0, err.Error(), "")
		}
		cmd = handlerCommand(m.Handlers, handler)
	}
	if len(cmd) == 0 {
		return in.setExtStatus(ref, handler, api.ExtensionSuccess, 0, "no "+handler+" handler", "")
	}
	// The handler runs in its folder, with where its settings are: sh
	// changes folder, then runs it in place of itself. Nothing secret is
	// on the command line (ps shows it); the settings are in the file.
	full := append([]string{"env",
		"WEFT_EXTENSION_NAME=" + ref.Name, "WEFT_EXTENSION_VERSION=" + ref.Version,
		"WEFT_EXTENSION_DIR=" + in.insidePath(dir), "WEFT_EXTENSION_SETTINGS=" + in.insidePath(settingsPath),
		"sh", "-c", `cd "$WEFT_EXTENSION_DIR" || exit 1; exec "$@"`, "weft-extension"}, cmd...)
	hctx, cancel := context.WithTimeout(ctx, handlerTimeout)
	defer cancel()
	if cp, ok := in.drv.(driver.Copier); ok {
		if err := in.copyIn(hctx, cp, ref, dir, settingsPath); err != nil {
			return in.setExtStatus(ref, handler, api.ExtensionError, 0, fmt.Sprintf("%s: %v", handler, err), "")
		}
	}
	out := &tailBuffer{max: api.MaxExtensionOutput}
	code, err := ex.Exec(hctx, in.id, full, out, out)
	switch {
	case err != nil:
		return in.setExtStatus(ref, handler, api.ExtensionError, -1, fmt.Sprintf("%s: %v", handler, err), out.String())
	case code != 0:
		return in.setExtStatus(ref, handler, api.ExtensionError, code, fmt.Sprintf("%s exited with code %d", handler, code), out.String())
	}
	return in.setExtStatus(ref, handler, api.ExtensionSuccess, 0, handler+" succeeded", out.String())
}

// copyIn copies the settings file into the instance, and the extension's
// folder unless this version of a published extension is there already.
// The caller holds extMu.
func (in *instance) copyIn(ctx context.Context, cp driver.Copier, ref api.ExtensionRef, dir, settingsPath string) error {
	copied := ref.Package != "" && in.inGuest[ref.Name] == ref.Version
	if !copied {
		if err := cp.CopyIn(ctx, in.id, dir, in.insidePath(dir)); err != nil {
			return err
		}
		if ref.Package != "" {
			if in.inGuest == nil {
				in.inGuest = map[string]string{}
			}
			in.inGuest[ref.Name] = ref.Version
		}
	}
	return cp.CopyIn(ctx, in.id, settingsPath, in.insidePath(settingsPath))
}

// insidePath is where the instance sees a path of its extensions folder:
// the same path for a process, under guestExtensionsDir in a container
// or a VM.
func (in *instance) insidePath(host string) string {
	in.mu.Lock()
	own := in.asg.Role.Runtime == api.RuntimeContainer || in.asg.Role.Runtime == api.RuntimeVM
	in.mu.Unlock()
	rel, err := filepath.Rel(in.extDir(), host)
	if !own || err != nil {
		return host
	}
	return path.Join(guestExtensionsDir, filepath.ToSlash(rel))
}

func readManifest(dir string) (api.ExtensionManifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, api.ExtensionManifestFile))
	if err != nil {
		return api.ExtensionManifest{}, fmt.Errorf("the extension's package: %w", err)
	}
	return api.ParseExtensionManifest(data)
}

// removeExtension runs disable then uninstall of an extension the role no
// longer lists (with the package it was applied from) and removes it.
func (in *instance) removeExtension(ctx context.Context, name string, was appliedExtension) {
	ref := api.ExtensionRef{Name: name, Version: was.Version}
	dir := filepath.Join(in.extDir(), name)
	settingsPath := filepath.Join(in.extDir(), name+".settings.json")
	if _, err := os.Stat(filepath.Join(dir, api.ExtensionManifestFile)); err == nil || extensions.IsBuiltIn(name) {
		for _, h := range []string{"disable", "uninstall"} {
			if st := in.runHandler(ctx, ref, dir, settingsPath, h); st.Status != api.ExtensionSuccess {
				in.a.event(in, "instance.extension", "warn", fmt.Sprintf("instance %s: extension %s: %s", in.id, name, st.Message))
				break
			}
		}
	}
	if cp, ok := in.drv.(driver.Copier); ok {
		for _, p := range []string{dir, settingsPath} {
			if err := cp.RemoveIn(ctx, in.id, in.insidePath(p)); err != nil {
				in.a.log.Warn("remove an extension's files in the instance", "instance", in.id, "extension", name, "err", err)
			}
		}
	}
	delete(in.inGuest, name)
	in.a.removeRoot(dir)
	os.Remove(settingsPath)
	in.mu.Lock()
	delete(in.extStatus, name)
	in.mu.Unlock()
	in.a.changed()
}

// setExtStatus records an extension's status, reports it, and returns it.
func (in *instance) setExtStatus(ref api.ExtensionRef, handler, status string, code int, msg, output string) api.ExtensionStatus {
	st := api.ExtensionStatus{Name: ref.Name, Version: ref.Version, Status: status, Handler: handler, ExitCode: code,
		Message: msg, Output: output, UpdatedAt: time.Now().UTC()}
	in.restoreExtStatus(st)
	if status == api.ExtensionError {
		in.a.event(in, "instance.extension", "warn", fmt.Sprintf("instance %s: extension %s %s: %s", in.id, ref.Name, ref.Version, msg))
	}
	return st
}

func (in *instance) restoreExtStatus(st api.ExtensionStatus) {
	in.mu.Lock()
	if in.extStatus == nil {
		in.extStatus = map[string]api.ExtensionStatus{}
	}
	in.extStatus[st.Name] = st
	in.mu.Unlock()
	in.a.changed()
}

// extensionStatuses lists the statuses in the role's order. in.mu must
// be held.
func (in *instance) extensionStatuses() []api.ExtensionStatus {
	var out []api.ExtensionStatus
	for _, ref := range in.asg.Role.Extensions {
		if st, ok := in.extStatus[ref.Name]; ok {
			out = append(out, st)
		}
	}
	return out
}

// extensionsDiffer reports whether an assignment changes the extensions.
func extensionsDiffer(a, b []api.ExtensionRef) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return !bytes.Equal(x, y)
}

// resetExtensions throws the instance's extensions away (a reimage): the
// next start applies them all from install.
func (in *instance) resetExtensions() {
	in.stopMonitor()
	in.extMu.Lock()
	defer in.extMu.Unlock()
	in.a.removeExtensionRoots(in.dir)
	os.RemoveAll(in.extDir())
	in.inGuest = nil
	in.mu.Lock()
	in.extStatus = nil
	in.mu.Unlock()
}

// builtInCommand prepares a built-in extension's handler and returns the
// command that runs it in the instance (nil: nothing to run).
func (in *instance) builtInCommand(ctx context.Context, ref api.ExtensionRef, dir, handler string) ([]string, error) {
	switch ref.Name {
	case extensions.CustomScript:
		if handler != "enable" && handler != "update" {
			return nil, nil
		}
		return customScript(ctx, ref, dir)
	case extensions.BackgroundInfo:
		if handler != "enable" && handler != "update" {
			return nil, nil
		}
		return in.backgroundInfo(dir)
	}
	return nil, fmt.Errorf("this agent does not know the built-in extension %s", ref.Name)
}

// customScript downloads the files, writes the script and the command in
// dir, and returns the command that runs them. A setting given both
// public and protected is refused, as Azure's custom script does.
func customScript(ctx context.Context, ref api.ExtensionRef, dir string) ([]string, error) {
	get := func(key string) (any, error) {
		pub, inPub := ref.Settings[key]
		prot, inProt := ref.ProtectedSettings[key]
		if inPub && inProt {
			return nil, fmt.Errorf("%s is given both in settings and protectedSettings: give it in one", key)
		}
		if inProt {
			return prot, nil
		}
		return pub, nil
	}
	uris, err := get("fileUris")
	if err != nil {
		return nil, err
	}
	list, _ := uris.([]any)
	for i, u := range list {
		s, ok := u.(string)
		if !ok {
			return nil, fmt.Errorf("fileUris[%d]: not a URL", i)
		}
		if err := fetchFile(ctx, s, dir); err != nil {
			return nil, fmt.Errorf("fileUris[%d]: %w", i, err)
		}
	}
	script, err := get("script")
	if err != nil {
		return nil, err
	}
	if s, _ := script.(string); s != "" {
		if err := os.WriteFile(filepath.Join(dir, "script.sh"), []byte(s), 0o700); err != nil {
			return nil, err
		}
	}
	command, err := get("commandToExecute")
	if err != nil {
		return nil, err
	}
	c, _ := command.(string)
	if c == "" {
		if s, _ := script.(string); s == "" {
			return nil, errors.New("custom-script needs commandToExecute or script")
		}
		c = "sh ./script.sh"
	}
	// The command may hold secrets (a protected commandToExecute): it
	// goes in a file of the instance's private folder, not on a command
	// line.
	if err := os.WriteFile(filepath.Join(dir, "command.sh"), []byte(c+"\n"), 0o700); err != nil {
		return nil, err
	}
	return []string{"sh", "./command.sh"}, nil
}

// backgroundInfo writes what the instance is and where it runs to
// background-info.txt in dir, and returns the command that shows it.
func (in *instance) backgroundInfo(dir string) ([]string, error) {
	md := in.metadata()
	in.mu.Lock()
	size := in.asg.Role.Size
	in.mu.Unlock()
	var b bytes.Buffer
	fmt.Fprintf(&b, "instance: %s\ntenant: %s\nservice: %s\nrole: %s\nversion: %d\n", md.ID, md.Tenant, md.Service, md.Role, md.Version)
	fmt.Fprintf(&b, "size: %g cpu, %s memory\n", size.CPU, size.Memory)
	fmt.Fprintf(&b, "node: %s\nhost: %s\nfault domain: %s\nupdate domain: %d\n", md.Node, in.a.cfg.Host, md.FaultDomain, md.UpdateDomain)
	for _, ep := range md.Endpoints {
		fmt.Fprintf(&b, "endpoint %s: %s %s\n", ep.Name, ep.Protocol, net.JoinHostPort(in.a.cfg.Host, strconv.Itoa(ep.Port)))
	}
	if err := os.WriteFile(filepath.Join(dir, "background-info.txt"), b.Bytes(), 0o600); err != nil {
		return nil, err
	}
	return []string{"cat", "./background-info.txt"}, nil
}

// fetchFile downloads rawURL (a blob URL with its SAS, or any HTTP URL)
// into dir, named by the last part of its path.
func fetchFile(ctx context.Context, rawURL, dir string) error {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("%q is not an http or https URL", redact(rawURL))
	}
	name := path.Base(u.Path)
	if name == "/" || name == "." || name == "" || name == ".." {
		return fmt.Errorf("%s names no file", redact(rawURL))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("x-ms-version", "2021-08-06")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("download %s: %v", redact(rawURL), errors.Unwrap(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("download %s: %s", redact(rawURL), resp.Status)
	}
	return atomicfile.Write(filepath.Join(dir, name), func(f *os.File) error {
		n, err := io.Copy(f, io.LimitReader(resp.Body, maxFetchedFile+1))
		if err == nil && n > maxFetchedFile {
			err = fmt.Errorf("larger than %d bytes", maxFetchedFile)
		}
		if err == nil {
			err = f.Chmod(0o700)
		}
		return err
	})
}

// redact is a URL without its query: a SAS is a credential, and errors
// end up in statuses the API shows.
func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(an unparsable URL)"
	}
	u.RawQuery, u.User = "", nil
	return u.String()
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string { return string(b.buf) }

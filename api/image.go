package api

import (
	"regexp"
	"strings"
	"time"
)

// Image types: what runtime an image serves.
const (
	ImageContainer = "container"
	ImageVM        = "vm"
)

// Image is an imported or built image, stored in the storage service and
// cached on nodes. Container and vm runtimes share the name space and the
// `weft image` verbs; Type says which runtime an image serves.
type Image struct {
	Name      string                `json:"name"`
	Tenant    string                `json:"tenant"`
	Type      string                `json:"type"`   // ImageContainer or ImageVM
	Digest    string                `json:"digest"` // "sha256:<hex>" over the files' digests: changes when any file changes
	Arch      string                `json:"arch"`   // GOARCH naming: amd64, arm64
	Size      int64                 `json:"size"`   // bytes stored
	Files     []ImageFile           `json:"files"`
	Container *ContainerImageConfig `json:"container,omitempty"`
	VM        *VMImageConfig        `json:"vm,omitempty"`
	CreatedAt time.Time             `json:"createdAt"`
}

// ImageFile is one stored file of an image. Container images have one file,
// "rootfs.tar" (the flattened root filesystem); VM images have "kernel",
// optionally "initrd", and "disk".
type ImageFile struct {
	Name   string `json:"name"`
	Digest string `json:"digest"` // "sha256:<hex>" of the file's bytes
	Size   int64  `json:"size"`
}

// Image file names.
const (
	ImageFileRootfs = "rootfs.tar"
	ImageFileKernel = "kernel"
	ImageFileInitrd = "initrd"
	ImageFileDisk   = "disk"
)

// ContainerImageConfig is what an OCI image says about how to run it.
type ContainerImageConfig struct {
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	Env        []string `json:"env,omitempty"` // KEY=value
	WorkingDir string   `json:"workingDir,omitempty"`
	User       string   `json:"user,omitempty"`
}

// VMImageConfig says how to boot a VM image.
type VMImageConfig struct {
	// Cmdline is the kernel command line for direct kernel boot (the
	// runtime appends its own console and root settings).
	Cmdline string `json:"cmdline,omitempty"`
	// DiskFormat is "raw" or "qcow2".
	DiskFormat string `json:"diskFormat"`
	// DiskSize is the disk's virtual size in bytes: the smallest OS disk a VM
	// made from this image may have.
	DiskSize int64 `json:"diskSize"`
	// GuestAgent is true when the image runs `weft guest` at boot.
	GuestAgent bool `json:"guestAgent"`
}

// ImageMetaFile is the name of the JSON copy of the Image record that a node
// keeps in each cached image's directory (driver.Spec.ImageDir).
const ImageMetaFile = "image.json"

var imageNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._:-]{0,126}[a-z0-9])?$`)

// ImageVersion splits an image name NAME:VERSION whose VERSION is one to
// four dot-separated numbers (as an extension's: 1, 2.1, 2026.12.6) into
// its family NAME and VERSION; ok is false for any other name. Images of
// one family are the versions a role with autoUpgrade follows, newest by
// CompareExtensionVersions.
func ImageVersion(name string) (family, version string, ok bool) {
	i := strings.LastIndexByte(name, ':')
	if i <= 0 || !ValidExtensionVersion(name[i+1:]) {
		return "", "", false
	}
	return name[:i], name[i+1:], true
}

// ValidateImageName checks an image name: lowercase letters, digits and
// . _ : - (not first or last), at most 128 characters.
func ValidateImageName(name string) error {
	if !imageNameRE.MatchString(name) {
		return Errorf(CodeInvalid, "name: %q is not an image name (lowercase letters, digits and . _ : -, at most 128)", name)
	}
	return nil
}

package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/ociimage"
	"github.com/weftcloud/weft/internal/vmimage"
)

// imageCommand is `weft image import|build|list|show|delete`.
func (a *app) imageCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Manage container and VM images",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef("usage: weft image import|build|list|show|delete")
		},
	}
	cmd.AddCommand(a.imageImportCommand(), a.imageBuildCommand(), a.imageListCommand(), a.imageShowCommand(), a.imageDeleteCommand())
	return cmd
}

func (a *app) imageImportCommand() *cobra.Command {
	var kernel, initrd, cmdline string
	cmd := &cobra.Command{
		Use:   "import NAME FILE",
		Short: "Import a container image (docker save tarball, OCI layout) or a VM disk (qcow2, raw)",
		Long: `Import a container image from a docker-save tarball or an OCI image layout (a folder or a tar
of one), or a VM image from a qcow2 or raw disk: with --kernel (and --initrd) it boots that kernel
directly; without, it boots as a PC through the disk's own bootloader.`,
		Args: exactArgs("NAME", "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, path := args[0], args[1]
			if err := api.ValidateImageName(name); err != nil {
				return err
			}
			format, err := diskFormat(path)
			if err != nil {
				return err
			}
			if kernel == "" && initrd != "" {
				return usagef("--initrd: give the --kernel it goes with")
			}
			if format == "" && kernel == "" {
				flat, err := ociimage.FromArchive(path, "")
				if err != nil {
					return err
				}
				defer flat.Remove()
				return a.uploadContainerImage(cmd.Context(), name, flat)
			}
			if format == "" {
				format = "raw"
			}
			return a.uploadVMImage(cmd.Context(), name, vmFiles{kernel: kernel, initrd: initrd, disk: path}, api.VMImageConfig{Cmdline: cmdline, DiskFormat: format})
		},
	}
	cmd.Flags().StringVar(&kernel, "kernel", "", "VM images: the kernel to boot (vmlinux or bzImage)")
	cmd.Flags().StringVar(&initrd, "initrd", "", "VM images: the initrd")
	cmd.Flags().StringVar(&cmdline, "cmdline", "", "VM images: the kernel command line")
	return cmd
}

func (a *app) imageBuildCommand() *cobra.Command {
	var fromDir string
	var entrypoint []string
	var env []string
	var workdir string
	var diskSize string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "build NAME [--from-dir DIR --entrypoint CMD]",
		Short: "Make a VM image from distro packages, or a container image from a folder",
		Long: `Without --from-dir: make a small bootable Linux VM image (the distro's kernel, busybox and
weft guest) from Debian packages fetched with apt-get; no other download.
With --from-dir: make a single-layer container image of the folder.`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := api.ValidateImageName(args[0]); err != nil {
				return err
			}
			if fromDir == "" {
				if len(entrypoint) > 0 || len(env) > 0 || workdir != "" {
					return usagef("--entrypoint, --env and --workdir make container images and need --from-dir")
				}
				size, err := optionalBytes("--disk-size", diskSize)
				if err != nil {
					return err
				}
				return a.buildVMImage(cmd.Context(), args[0], int64(size), verbose)
			}
			flat, err := ociimage.FromDir(fromDir, api.ContainerImageConfig{Entrypoint: entrypoint, Env: env, WorkingDir: workdir}, "")
			if err != nil {
				return err
			}
			defer flat.Remove()
			return a.uploadContainerImage(cmd.Context(), args[0], flat)
		},
	}
	cmd.Flags().StringVar(&fromDir, "from-dir", "", "the folder that becomes the image's root filesystem")
	cmd.Flags().StringSliceVar(&entrypoint, "entrypoint", nil, "the program to run and its arguments, comma-separated (e.g. /server,--port,8080)")
	cmd.Flags().StringArrayVar(&env, "env", nil, "KEY=value for the image's environment (repeatable)")
	cmd.Flags().StringVar(&workdir, "workdir", "", "the working directory")
	cmd.Flags().StringVar(&diskSize, "disk-size", "", "VM images: the size of the root disk (default 256Mi)")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "VM images: print the build's log records too")
	return cmd
}

// buildVMImage makes the default VM image with this weft binary as its
// guest agent and uploads it, saying each step on stderr; verbose adds the
// build's log records.
func (a *app) buildVMImage(ctx context.Context, name string, diskSize int64, verbose bool) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "weft-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	opts := vmimage.Options{WorkDir: work, WeftBinary: self, DiskSize: diskSize, Progress: a.stderr}
	if verbose {
		opts.Log = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	fmt.Fprintf(a.stderr, "building VM image %s\n", name)
	res, err := vmimage.Build(ctx, opts)
	if err != nil {
		return err
	}
	return a.uploadVMImage(ctx, name, vmFiles{kernel: res.Kernel, initrd: res.Initrd, disk: res.Disk},
		api.VMImageConfig{Cmdline: res.Cmdline, DiskFormat: "raw", GuestAgent: true})
}

func (a *app) imageListCommand() *cobra.Command {
	return a.allTenantsFlag(&cobra.Command{
		Use:   "list",
		Short: "List images",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			imgs, err := a.client().Images(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(nonNil(imgs))
			}
			w := a.table()
			row(w, a.tenantCol("TENANT", "NAME", "TYPE", "ARCH", "SIZE", "DIGEST", "CREATED")...)
			for _, img := range imgs {
				row(w, a.tenantCol(img.Tenant, img.Name, img.Type, img.Arch, api.Bytes(img.Size).String(), shortDigest(img.Digest), age(a.now(), img.CreatedAt))...)
			}
			return w.Flush()
		},
	})
}

func (a *app) imageShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show an image",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			img, err := a.client().Image(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.printImage(img)
		},
	}
}

func (a *app) imageDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete an image no service uses",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().DeleteImage(cmd.Context(), args[0]); err != nil {
				return err
			}
			if !a.jsonOutput() {
				fmt.Fprintf(a.stdout, "image %s deleted\n", args[0])
			}
			return nil
		},
	}
}

func (a *app) printImage(img api.Image) error {
	if a.jsonOutput() {
		return a.printJSON(img)
	}
	w := a.table()
	row(w, "Name:", img.Name)
	row(w, "Type:", img.Type)
	row(w, "Arch:", img.Arch)
	row(w, "Digest:", img.Digest)
	row(w, "Size:", api.Bytes(img.Size).String())
	if c := img.Container; c != nil {
		row(w, "Entrypoint:", orDash(strings.Join(c.Entrypoint, " ")))
		row(w, "Cmd:", orDash(strings.Join(c.Cmd, " ")))
		row(w, "Workdir:", orDash(c.WorkingDir))
	}
	if v := img.VM; v != nil {
		row(w, "Disk:", fmt.Sprintf("%s, %s", v.DiskFormat, api.Bytes(v.DiskSize).String()))
		row(w, "Cmdline:", orDash(v.Cmdline))
		row(w, "Guest agent:", v.GuestAgent)
	}
	for _, f := range img.Files {
		row(w, "File:", fmt.Sprintf("%s %s %s", f.Name, api.Bytes(f.Size).String(), shortDigest(f.Digest)))
	}
	return w.Flush()
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

func (a *app) uploadContainerImage(ctx context.Context, name string, flat *ociimage.Flat) error {
	img := api.Image{Name: name, Type: api.ImageContainer, Arch: flat.Arch, Container: &flat.Config, Files: []api.ImageFile{flat.Rootfs}}
	return a.uploadImage(ctx, img, map[string]string{api.ImageFileRootfs: flat.Path})
}

type vmFiles struct{ kernel, initrd, disk string }

// uploadVMImage hashes and uploads a VM image's files.
func (a *app) uploadVMImage(ctx context.Context, name string, files vmFiles, cfg api.VMImageConfig) error {
	paths := map[string]string{api.ImageFileDisk: files.disk}
	if files.kernel != "" { // none: the disk boots with its own bootloader
		paths[api.ImageFileKernel] = files.kernel
	}
	if files.initrd != "" {
		paths[api.ImageFileInitrd] = files.initrd
	}
	img := api.Image{Name: name, Type: api.ImageVM, Arch: runtime.GOARCH, VM: &cfg}
	for _, n := range []string{api.ImageFileKernel, api.ImageFileInitrd, api.ImageFileDisk} {
		if p, ok := paths[n]; ok {
			f, err := describeFile(n, p)
			if err != nil {
				return err
			}
			img.Files = append(img.Files, f)
		}
	}
	size, err := diskSize(files.disk, cfg.DiskFormat)
	if err != nil {
		return err
	}
	cfg.DiskSize = size
	return a.uploadImage(ctx, img, paths)
}

// uploadImage sends each file the controller lacks, then records the image.
func (a *app) uploadImage(ctx context.Context, img api.Image, paths map[string]string) error {
	c := a.client()
	for _, f := range img.Files {
		start := time.Now()
		file, err := os.Open(paths[f.Name])
		if err != nil {
			return err
		}
		sent, err := c.UploadImageFile(ctx, f, file)
		file.Close()
		if err != nil {
			return fmt.Errorf("upload %s: %w", f.Name, err)
		}
		if !a.jsonOutput() {
			if sent {
				fmt.Fprintf(a.stderr, "%s: %s uploaded in %s\n", f.Name, api.Bytes(f.Size).String(), time.Since(start).Round(time.Millisecond))
			} else {
				fmt.Fprintf(a.stderr, "%s: already stored\n", f.Name)
			}
		}
	}
	created, err := c.CreateImage(ctx, img)
	if err != nil {
		return err
	}
	return a.printImage(created)
}

// describeFile hashes a file for upload.
func describeFile(name, path string) (api.ImageFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return api.ImageFile{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return api.ImageFile{}, fmt.Errorf("read %s: %w", path, err)
	}
	return api.ImageFile{Name: name, Digest: "sha256:" + hex.EncodeToString(h.Sum(nil)), Size: n}, nil
}

// qcow2Magic starts every qcow2 file.
var qcow2Magic = []byte{'Q', 'F', 'I', 0xfb}

// diskFormat is "qcow2" for a qcow2 file and "" otherwise (a raw disk, or
// not a disk at all: the caller decides by the other flags).
func diskFormat(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	switch {
	case n >= 4 && bytes.Equal(head[:4], qcow2Magic):
		return "qcow2", nil
	case n == 512 && head[510] == 0x55 && head[511] == 0xAA && !tarHeader(head):
		return "raw", nil // a master boot record: a disk with its own bootloader
	}
	return "", nil
}

// tarHeader reports whether a first block is a tar header ("ustar" at 257),
// so that a tarball is never taken for a disk.
func tarHeader(block []byte) bool { return string(block[257:262]) == "ustar" }

// diskSize is a disk's virtual size: a raw file's length, or the size field
// of a qcow2 header (big-endian, at byte 24).
func diskSize(path, format string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if format != "qcow2" {
		fi, err := f.Stat()
		if err != nil {
			return 0, err
		}
		return fi.Size(), nil
	}
	hdr := make([]byte, 32)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return 0, fmt.Errorf("%s: a truncated qcow2 header", path)
	}
	return int64(binary.BigEndian.Uint64(hdr[24:32])), nil
}

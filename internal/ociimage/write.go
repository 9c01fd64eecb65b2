package ociimage

import (
	"bytes"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/weftcloud/weft/api"
)

// Build makes a single-layer image of dir for arch (tests and tools use it
// to make images without a registry or a docker daemon).
func Build(dir string, cfg api.ContainerImageConfig, arch string) (v1.Image, error) {
	var buf bytes.Buffer
	if err := tarDir(&buf, dir); err != nil {
		return nil, fmt.Errorf("ociimage: %w", err)
	}
	return BuildLayer(buf.Bytes(), cfg, arch)
}

// BuildLayer makes a single-layer image whose layer is the tar data, as
// given (tests use it to make images of archives no folder could give).
func BuildLayer(data []byte, cfg api.ContainerImageConfig, arch string) (v1.Image, error) {
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		return nil, fmt.Errorf("ociimage: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, fmt.Errorf("ociimage: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("ociimage: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Config.Entrypoint, cf.Config.Cmd, cf.Config.Env = cfg.Entrypoint, cfg.Cmd, cfg.Env
	cf.Config.WorkingDir, cf.Config.User = cfg.WorkingDir, cfg.User
	return mutate.ConfigFile(img, cf)
}

// WriteLayout writes img as an OCI image layout folder.
func WriteLayout(dir string, img v1.Image) error {
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("ociimage: %w", err)
	}
	if err := p.AppendImage(img); err != nil {
		return fmt.Errorf("ociimage: %w", err)
	}
	return nil
}

// WriteDockerTarball writes img as `docker save` would, tagged tag.
func WriteDockerTarball(path, tag string, img v1.Image) error {
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("ociimage: %w", err)
	}
	return tarball.WriteToFile(path, ref, img)
}

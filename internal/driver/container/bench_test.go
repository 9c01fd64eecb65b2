package container

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/driver"
	"github.com/weftcloud/weft/internal/ociimage"
	"github.com/weftcloud/weft/internal/runc"
)

// BenchmarkStartToHealthy measures a container web server from start to
// its first answered request (p50 and p99 over b.N starts): through the
// driver (overlay, network namespace, shim, port relay), through runc by
// hand on a prepared bundle in the host's network (the floor), and through
// `docker run` of the same image where a Docker daemon answers.
//
//	go test -run '^$' -bench StartToHealthy -benchtime 100x ./internal/driver/container/
func BenchmarkStartToHealthy(b *testing.B) {
	requireHost(b)
	image := busyboxImage(b)
	serve := func(port int) []string {
		return []string{"/bin/sh", "-c", fmt.Sprintf("exec httpd -f -p %d -h /www", port)}
	}

	b.Run("weft", func(b *testing.B) {
		d := newDriver(b, b.TempDir())
		ctx := context.Background()
		measure(b, func(i, port int) (func(), error) {
			dir := filepath.Join(b.TempDir(), "i")
			os.MkdirAll(dir, 0o755)
			id := fmt.Sprintf("bench-%d", i)
			_, err := d.Start(ctx, driver.Spec{ID: id, Dir: dir, Image: "busybox", ImageDir: image,
				Command: serve(port), Ports: map[string]int{"http": port}, Memory: 64 << 20})
			return func() { d.Stop(ctx, id, time.Second); d.Remove(ctx, id) }, err
		})
	})

	b.Run("runc", func(b *testing.B) {
		rt, _ := runc.Runtime{Root: b.TempDir()}.Resolve()
		bundle := b.TempDir()
		if err := os.CopyFS(filepath.Join(bundle, "rootfs"), os.DirFS(filepath.Join(image, "rootfs"))); err != nil {
			b.Fatal(err)
		}
		measure(b, func(i, port int) (func(), error) {
			id := fmt.Sprintf("bench-runc-%d", i)
			c := runc.Container{Args: serve(port), Hostname: id, CgroupsPath: "/weft-bench/" + id, Memory: 64 << 20, Netns: fmt.Sprintf("/proc/%d/ns/net", os.Getpid())}
			if err := runc.WriteBundle(bundle, c); err != nil {
				return nil, err
			}
			args := rt.RunDetached(id, bundle, filepath.Join(bundle, "pid"))
			cmd := exec.Command(args[0], args[1:]...)
			// A file, not a pipe: the container keeps its stdio open.
			out, err := os.Create(filepath.Join(bundle, "output"))
			if err != nil {
				return nil, err
			}
			defer out.Close()
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Run(); err != nil {
				log, _ := os.ReadFile(out.Name())
				return nil, fmt.Errorf("%v: %s", err, log)
			}
			return func() { rt.Delete(context.Background(), id) }, err
		})
	})

	b.Run("docker", func(b *testing.B) {
		if err := exec.Command("docker", "info").Run(); err != nil {
			b.Skip("no Docker daemon answers")
		}
		img, err := ociimage.Build(filepath.Join(image, "rootfs"), api.ContainerImageConfig{Entrypoint: []string{"/bin/sh"}}, runtime.GOARCH)
		if err != nil {
			b.Fatal(err)
		}
		tarball := filepath.Join(b.TempDir(), "busybox.tar")
		if err := ociimage.WriteDockerTarball(tarball, "weft-bench/busybox:latest", img); err != nil {
			b.Fatal(err)
		}
		if out, err := exec.Command("docker", "load", "-i", tarball).CombinedOutput(); err != nil {
			b.Fatalf("docker load: %v: %s", err, out)
		}
		measure(b, func(i, port int) (func(), error) {
			name := fmt.Sprintf("weft-bench-%d", i)
			args := append([]string{"run", "-d", "--name", name, "-m", "64m", "-p", fmt.Sprintf("127.0.0.1:%d:%d", port, port), "weft-bench/busybox:latest"}, serve(port)[1:]...)
			out, err := exec.Command("docker", args...).CombinedOutput()
			if err != nil {
				err = fmt.Errorf("docker run: %v: %s", err, out)
			}
			return func() { exec.Command("docker", "rm", "-f", name).Run() }, err
		})
	})
}

// measure starts b.N servers one after another with start and times each
// from the call to the first HTTP answer on its port.
func measure(b *testing.B, start func(i, port int) (cleanup func(), err error)) {
	var took []time.Duration
	client := &http.Client{Timeout: time.Second}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		port := 21000 + i%1000
		t0 := time.Now()
		cleanup, err := start(i, port)
		if err != nil {
			b.Fatal(err)
		}
		url := fmt.Sprintf("http://127.0.0.1:%d/", port)
		for {
			resp, err := client.Get(url)
			if err == nil {
				resp.Body.Close()
				break
			}
			if time.Since(t0) > 20*time.Second {
				b.Fatalf("start %d: no answer within 20s: %v", i, err)
			}
			time.Sleep(2 * time.Millisecond)
		}
		took = append(took, time.Since(t0))
		b.StopTimer()
		cleanup()
		b.StartTimer()
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(took[(len(took)*99)/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(0, "ns/op")
}

// Command storagebench measures the storage service through the official Azure
// SDK for Go (the workloads of internal/storage/storageload), side by side with
// Azurite (the Azure storage emulator) when it is installed, and prints a
// Markdown table. scripts/bench-storage.sh runs it.
//
//	go run ./internal/storage/storagebench -azurite PATH/TO/node_modules/.bin/azurite
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/storageload"
	"github.com/weftcloud/weft/internal/storage/storageserver"
)

func main() {
	azurite := flag.String("azurite", "", "path of the azurite executable (npm package azurite); empty: Weft only")
	dur := flag.Duration("duration", 4*time.Second, "how long each figure runs")
	only := flag.String("only", "", "measure only the figures whose name contains this")
	flag.Parse()
	log.SetFlags(0)

	dir, err := os.MkdirTemp("", "storagebench-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	srv, err := storageserver.Start(storageserver.Config{Data: filepath.Join(dir, "weft"), Host: "127.0.0.1"})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	targets := []storageload.Target{{Name: "Weft", Blob: srv.BlobEndpoint(), Queue: srv.QueueEndpoint(), Table: srv.TableEndpoint()}}
	if *azurite != "" {
		t, stop, err := startAzurite(*azurite, filepath.Join(dir, "azurite"))
		if err != nil {
			log.Printf("Azurite not measured: %v", err)
		} else {
			defer stop()
			targets = append(targets, t)
		}
	}

	var chosen []storageload.Workload
	for _, f := range storageload.Workloads() {
		if strings.Contains(f.Name, *only) {
			chosen = append(chosen, f)
		}
	}
	results := map[string][]float64{}
	for _, f := range chosen {
		for _, t := range targets {
			v, err := measure(f, t, *dur)
			if err != nil {
				log.Printf("%s on %s: %v", f.Name, t.Name, err)
				v = -1
			}
			results[f.Name] = append(results[f.Name], v)
			log.Printf("%-40s %-8s %10.0f %s", f.Name, t.Name, v, f.Unit)
		}
	}
	fmt.Printf("\n| figure | %s |", targets[0].Name)
	if len(targets) > 1 {
		fmt.Printf(" %s | Weft / Azurite |", targets[1].Name)
	}
	fmt.Printf("\n|---|---|%s\n", strings.Repeat("---|", 2*(len(targets)-1)))
	for _, f := range chosen {
		r := results[f.Name]
		clients := "clients"
		if f.Clients == 1 {
			clients = "client"
		}
		fmt.Printf("| %s (%d %s) | %s |", f.Name, f.Clients, clients, show(r[0], f.Unit))
		if len(r) > 1 {
			ratio := "-"
			if r[0] > 0 && r[1] > 0 {
				ratio = fmt.Sprintf("%.1fx", r[0]/r[1])
			}
			fmt.Printf(" %s | %s |", show(r[1], f.Unit), ratio)
		}
		fmt.Println()
	}
	if dd, err := ddThroughput(dir); err == nil && *only == "" {
		fmt.Printf("\n`dd if=/dev/zero bs=1M count=1024 conv=fsync` on the same disk: %s\n", dd)
	}
}

func show(v float64, unit string) string {
	if v < 0 {
		return "failed"
	}
	return fmt.Sprintf("%.0f %s", v, unit)
}

// measure runs w against t for d and returns its figure. Errors after
// some ops succeeded end only the clients that met them.
func measure(w storageload.Workload, t storageload.Target, d time.Duration) (float64, error) {
	ctx := context.Background()
	op, err := w.Prepare(ctx, t)
	if err != nil {
		return 0, err
	}
	r, err := storageload.Drive(ctx, w.Clients, op, storageload.For(d))
	if err != nil && r.Ops == 0 {
		return 0, err
	}
	return r.Rate(w.Unit), nil
}

// startAzurite runs the emulator on free ports with its data in dir.
func startAzurite(bin, dir string) (storageload.Target, func(), error) {
	ports := make([]int, 3)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return storageload.Target{}, nil, err
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	cmd := exec.Command(bin, "--silent", "--location", dir, "--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1", "--tableHost", "127.0.0.1",
		"--blobPort", fmt.Sprint(ports[0]), "--queuePort", fmt.Sprint(ports[1]), "--tablePort", fmt.Sprint(ports[2]),
		"--skipApiVersionCheck", "--loose", "--disableTelemetry") // no traffic leaves this machine
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return storageload.Target{}, nil, err
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait() }
	for _, p := range ports {
		up := false
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
				c.Close()
				up = true
				break
			}
		}
		if !up {
			stop()
			return storageload.Target{}, nil, fmt.Errorf("azurite did not listen on %d", p)
		}
	}
	u := func(p int) string { return fmt.Sprintf("http://127.0.0.1:%d/%s", p, storage.DevAccount) }
	return storageload.Target{Name: "Azurite", Blob: u(ports[0]), Queue: u(ports[1]), Table: u(ports[2])}, stop, nil
}

// ddThroughput is what dd writes with one fsync at the end: the disk's floor.
func ddThroughput(dir string) (string, error) {
	out, err := exec.Command("dd", "if=/dev/zero", "of="+filepath.Join(dir, "dd.bin"), "bs=1M", "count=1024", "conv=fsync").CombinedOutput()
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`([0-9.,]+ [MG]B/s)`).FindString(string(out))
	return m, nil
}

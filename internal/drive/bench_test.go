package drive_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/weftcloud/weft/internal/drive"
)

// ioJob is one fio-style job on a file of Size bytes: Block-sized I/Os,
// sequential or at random block-aligned offsets. Files are opened with
// O_DIRECT (nothing comes from the page cache) and, to write, O_DSYNC:
// each write is durable when it returns, which is what every write to a
// drive is, so the local disk is measured under the same promise.
type ioJob struct {
	Name   string `json:"name"`
	Write  bool   `json:"write"`
	Random bool   `json:"random"`
	Block  int    `json:"block"`
	Size   int64  `json:"size"`
	Ops    int    `json:"ops"` // I/Os of a random job (a sequential one covers Size)
	Path   string `json:"path,omitempty"`
}

// ioResult is what a job measured.
type ioResult struct {
	Bytes   int64   `json:"bytes"`
	Ops     int     `json:"ops"`
	Seconds float64 `json:"seconds"`
	Err     string  `json:"err,omitempty"`
}

const benchFileSize = 64 << 20

var ioJobs = []ioJob{
	{Name: "seq-write-1MiB", Write: true, Block: 1 << 20, Size: benchFileSize},
	{Name: "seq-read-1MiB", Block: 1 << 20, Size: benchFileSize},
	{Name: "rand-write-4KiB", Write: true, Random: true, Block: 4 << 10, Size: benchFileSize, Ops: 1000},
	{Name: "rand-read-4KiB", Random: true, Block: 4 << 10, Size: benchFileSize, Ops: 2000},
}

// jobEnv makes the test binary run one job and print its result (see
// TestMain): the I/O of a drive's benchmark comes from another process, as
// an instance's does, not from the one serving the drive over FUSE.
const jobEnv = "WEFT_DRIVE_BENCH_JOB"

func TestMain(m *testing.M) {
	if spec := os.Getenv(jobEnv); spec != "" {
		var job ioJob
		res := ioResult{}
		if err := json.Unmarshal([]byte(spec), &job); err != nil {
			res.Err = err.Error()
		} else {
			res = runFileJob(job)
		}
		json.NewEncoder(os.Stdout).Encode(res)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runFileJob runs job on the file at job.Path.
func runFileJob(job ioJob) ioResult {
	flags := unix.O_DIRECT | os.O_RDONLY
	if job.Write {
		flags = unix.O_DIRECT | unix.O_DSYNC | os.O_WRONLY
	}
	f, err := os.OpenFile(job.Path, flags, 0)
	if err != nil {
		return ioResult{Err: err.Error()}
	}
	defer f.Close()
	// O_DIRECT wants a buffer aligned to the block size of the device:
	// an anonymous mapping is page aligned.
	buf, err := unix.Mmap(-1, 0, job.Block, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return ioResult{Err: err.Error()}
	}
	defer unix.Munmap(buf)
	for i := range buf {
		buf[i] = byte(i*7 + 1)
	}
	res := ioResult{}
	err = eachIO(job, func(off int64) error {
		var err error
		if job.Write {
			_, err = f.WriteAt(buf, off)
		} else {
			_, err = f.ReadAt(buf, off)
		}
		return err
	}, &res)
	if err != nil {
		res.Err = err.Error()
	}
	return res
}

// eachIO calls io at each offset of job, timing all of them into res.
func eachIO(job ioJob, io func(off int64) error, res *ioResult) error {
	blocks := job.Size / int64(job.Block)
	ops := int(blocks)
	if job.Random {
		ops = job.Ops
	}
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Now()
	for i := 0; i < ops; i++ {
		off := int64(i) * int64(job.Block)
		if job.Random {
			off = rng.Int64N(blocks) * int64(job.Block)
		}
		if err := io(off); err != nil {
			return fmt.Errorf("%s at %d: %w", job.Name, off, err)
		}
		res.Ops++
		res.Bytes += int64(job.Block)
	}
	res.Seconds = time.Since(start).Seconds()
	return nil
}

// runInProcess runs job in a process of its own (this test binary).
func runInProcess(b *testing.B, job ioJob) ioResult {
	b.Helper()
	spec, _ := json.Marshal(job)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), jobEnv+"="+string(spec))
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("%s: %v", job.Name, err)
	}
	var res ioResult
	if err := json.Unmarshal(out, &res); err != nil {
		b.Fatalf("%s: %v: %s", job.Name, err, out)
	}
	if res.Err != "" {
		b.Fatalf("%s: %s", job.Name, res.Err)
	}
	return res
}

func report(b *testing.B, total ioResult) {
	b.ReportMetric(float64(total.Bytes)/total.Seconds/1e6, "MB/s")
	b.ReportMetric(float64(total.Ops)/total.Seconds, "IOPS")
	b.ReportMetric(total.Seconds/float64(total.Ops)*1e6, "µs/io")
}

// BenchmarkDriveIO: fio-style jobs through a drive (a file on its ext4,
// from another process), on the local disk (a file in the test's temporary
// folder, the floor), and on the page blob through the storage service's
// API (vmdisk, what the drive is made of; each write a Put Page).
//
//	go test -run '^$' -bench DriveIO -benchtime 1x ./internal/drive/
func BenchmarkDriveIO(b *testing.B) {
	if err := drive.Available(); err != nil {
		b.Skipf("drives cannot be attached here: %v", err)
	}
	ctx := context.Background()
	_, disk := newDiskNamed(b, "bench", 256<<20)
	work := b.TempDir()
	d, err := drive.Attach(ctx, disk, drive.Options{Work: work, Mount: filepath.Join(work, "mnt")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Detach() })
	files := map[string]string{
		"drive": filepath.Join(d.Path(), "bench"),
		"local": filepath.Join(b.TempDir(), "bench"),
	}
	for _, target := range []string{"drive", "local"} {
		path := files[target]
		if err := writeSynced(path, make([]byte, benchFileSize)); err != nil {
			b.Fatal(err)
		}
		for _, job := range ioJobs {
			job.Path = path
			b.Run(target+"/"+job.Name, func(b *testing.B) {
				var total ioResult
				for b.Loop() {
					res := runInProcess(b, job)
					total.Bytes += res.Bytes
					total.Ops += res.Ops
					total.Seconds += res.Seconds
				}
				report(b, total)
			})
		}
	}
	// The page blob itself, a blob of its own on the same storage service.
	_, blob := newDiskNamed(b, "raw", benchFileSize)
	for _, job := range ioJobs {
		b.Run("pageblob/"+job.Name, func(b *testing.B) {
			buf := make([]byte, job.Block)
			for i := range buf {
				buf[i] = byte(i*7 + 1)
			}
			var total ioResult
			for b.Loop() {
				var res ioResult
				err := eachIO(job, func(off int64) error {
					if job.Write {
						return blob.WriteAt(ctx, buf, off)
					}
					return blob.ReadAt(ctx, buf, off)
				}, &res)
				if err != nil {
					b.Fatal(err)
				}
				total.Bytes += res.Bytes
				total.Ops += res.Ops
				total.Seconds += res.Seconds
			}
			report(b, total)
		})
	}
}

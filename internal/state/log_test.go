package state

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestApplyLog(t *testing.T) {
	tests := []struct {
		name     string
		batches  []LogBatch
		wantErrs []error // per batch
		wantErr  bool    // the whole call fails
		want     []Entry
		index    uint64
	}{
		{
			name: "batches take the log's indexes, with gaps",
			batches: []LogBatch{
				{Index: 3, Ops: []Op{put(KindNodes, "a", `1`)}},
				{Index: 7, Ops: []Op{put(KindNodes, "b", `2`), check(KindNodes, "a", 3)}},
			},
			wantErrs: []error{nil, nil},
			want: []Entry{
				{Kind: KindNodes, Key: "a", Value: []byte(`1`), Rev: 3},
				{Kind: KindNodes, Key: "b", Value: []byte(`2`), Rev: 7},
			},
			index: 7,
		},
		{
			name: "a failed check still uses its index up",
			batches: []LogBatch{
				{Index: 2, Ops: []Op{put(KindNodes, "a", `1`)}},
				{Index: 4, Ops: []Op{check(KindNodes, "a", 1), put(KindNodes, "b", `2`)}},
				{Index: 5, Ops: []Op{{Kind: KindNodes}}},
			},
			wantErrs: []error{nil, ErrConflict, ErrInvalid},
			want:     []Entry{{Kind: KindNodes, Key: "a", Value: []byte(`1`), Rev: 2}},
			index:    5,
		},
		{
			name: "indexes out of order apply nothing",
			batches: []LogBatch{
				{Index: 4, Ops: []Op{put(KindNodes, "a", `1`)}},
				{Index: 4, Ops: []Op{put(KindNodes, "b", `1`)}},
			},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, path := openTest(t)
			errs, err := db.ApplyLog(tt.batches)
			if tt.wantErr {
				if err == nil || db.Index() != 0 || db.List(KindNodes, "") != nil {
					t.Fatalf("ApplyLog = %v, index %d: want an error and nothing applied", err, db.Index())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range tt.wantErrs {
				if !errors.Is(errs[i], want) || (want == nil) != (errs[i] == nil) {
					t.Errorf("batch %d: err %v, want %v", i, errs[i], want)
				}
			}
			// The same on disk as in memory.
			db.Close()
			db2, err := Open(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db2.Close()
			if got := db2.Index(); got != tt.index {
				t.Errorf("index after reopen %d, want %d", got, tt.index)
			}
			if diff := cmp.Diff(tt.want, db2.List(KindNodes, "")); diff != "" {
				t.Errorf("entries after reopen (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCaptureIsPointInTime(t *testing.T) {
	db, _ := openTest(t)
	mustApply(t, db, put(KindNodes, "a", `1`))
	c, err := db.Capture()
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, db, put(KindNodes, "a", `2`), put(KindNodes, "b", `3`))

	var buf bytes.Buffer
	if err := c.Write(&buf); err != nil {
		t.Fatal(err)
	}
	read, err := ReadCapture(bytes.NewReader(buf.Bytes()))
	if err != nil || read.Index() != 1 || c.Index() != 1 {
		t.Fatalf("ReadCapture = %v, %v; capture index %d: want 1", read, err, c.Index())
	}
	if _, err := ReadCapture(bytes.NewReader(buf.Bytes()[:buf.Len()-3])); !errors.Is(err, ErrBadSnapshot) {
		t.Errorf("truncated stream: %v, want ErrBadSnapshot", err)
	}
	if err := db.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	want := []Entry{{Kind: KindNodes, Key: "a", Value: []byte(`1`), Rev: 1}}
	if diff := cmp.Diff(want, db.List(KindNodes, "")); diff != "" {
		t.Errorf("restored capture (-want +got):\n%s", diff)
	}
}

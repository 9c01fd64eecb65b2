package boltlog

import (
	"bytes"
	"slices"
	"testing"
)

func TestFramesStopAtTornStaleOrCorrupt(t *testing.T) {
	acct := bucketID("", []byte("acct"))
	changes := []change{
		{op: opMkBucket, bucket: bucketID(acct, []byte("t"))},
		{bucket: bucketID(acct, []byte("t")), key: []byte("k1"), val: []byte("v1")},
		{bucket: acct, key: []byte("k2")},
		{bucket: bucketID("", []byte("u")), key: []byte("k3"), val: []byte{}},
		{op: opRmBucket, bucket: bucketID("", []byte("u"))},
	}
	payload := []byte{frameUpdate}
	for _, c := range changes {
		payload = appendChange(payload, c)
	}
	seg := appendFrame(nil, 7, payload)
	seg = appendFrame(seg, 7, appendChange([]byte{frameWrites}, changes[1]))
	whole := len(seg)
	seg = appendFrame(seg, 6, appendChange([]byte{frameWrites}, changes[2])) // a recycled file's old frame
	seg = append(seg, make([]byte, 64)...)

	frames := readFrames(seg, 7)
	if len(frames) != 2 {
		t.Fatalf("read %d frames, want 2 (the stale frame of seq 6 ends the segment)", len(frames))
	}
	got, err := decodeFrame(frames[0])
	if err != nil {
		t.Fatal(err)
	}
	if got.kind != frameUpdate || len(got.changes) != len(changes) {
		t.Fatalf("decoded kind %d with %d changes, want %d with %d", got.kind, len(got.changes), frameUpdate, len(changes))
	}
	for i, c := range got.changes {
		w := changes[i]
		if c.op != w.op || c.bucket != w.bucket || !bytes.Equal(c.key, w.key) || !bytes.Equal(c.val, w.val) || (c.val == nil) != (w.val == nil) {
			t.Errorf("change %d = %+v, want %+v", i, c, w)
		}
	}
	if n := len(readFrames(seg[:whole-1], 7)); n != 1 {
		t.Errorf("torn second frame: read %d frames, want 1", n)
	}
	corrupt := slices.Clone(seg)
	corrupt[whole-1] ^= 1
	if n := len(readFrames(corrupt, 7)); n != 1 {
		t.Errorf("corrupt second frame: read %d frames, want 1", n)
	}
	for _, bad := range [][]byte{
		{frameWrites, opPut, 200},                     // a length past the end
		appendChange([]byte{frameWrites}, changes[0]), // a bucket made outside an Update
		{9}, // an unknown kind
	} {
		if _, err := decodeFrame(bad); err == nil {
			t.Errorf("%v decoded", bad)
		}
	}
}

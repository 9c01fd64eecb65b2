package boltlog

import (
	"bytes"
	"slices"
	"testing"
)

func TestFramesStopAtTornStaleOrCorrupt(t *testing.T) {
	changes := []change{
		{bucket: bucketID(bucketID("", []byte("acct")), []byte("t")), key: []byte("k1"), val: []byte("v1")},
		{bucket: bucketID("", []byte("acct")), key: []byte("k2")},
		{bucket: bucketID("", []byte("u")), key: []byte("k3"), val: []byte{}},
	}
	var payload []byte
	for _, c := range changes {
		payload = appendChange(payload, c)
	}
	seg := appendFrame(nil, 7, payload)
	seg = appendFrame(seg, 7, appendChange(nil, changes[0]))
	whole := len(seg)
	seg = appendFrame(seg, 6, appendChange(nil, changes[1])) // a recycled file's old frame
	seg = append(seg, make([]byte, 64)...)

	frames := readFrames(seg, 7)
	if len(frames) != 2 {
		t.Fatalf("read %d frames, want 2 (the stale frame of seq 6 ends the segment)", len(frames))
	}
	got, err := decodeChanges(frames[0])
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range got {
		w := changes[i]
		if c.bucket != w.bucket || !bytes.Equal(c.key, w.key) || !bytes.Equal(c.val, w.val) || (c.val == nil) != (w.val == nil) {
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
	if _, err := decodeChanges([]byte{opPut, 200}); err == nil {
		t.Error("a record with a length past its end decoded")
	}
}

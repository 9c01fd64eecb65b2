package raftstore

import (
	"encoding/hex"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/weftcloud/weft/internal/state"
)

func TestBatchEncoding(t *testing.T) {
	tests := []struct {
		name string
		ops  []state.Op
		hex  string // the wire form: a change here breaks mixed-version clusters
	}{
		{name: "empty", ops: []state.Op{}, hex: "0100"},
		{
			name: "put",
			ops:  []state.Op{{Kind: "nodes", Key: "n1", Value: []byte(`{"a":1}`)}},
			hex:  "0101" + "00" + "056e6f646573" + "026e31" + "00" + "077b2261223a317d",
		},
		{
			name: "delete and check",
			ops: []state.Op{
				{Kind: "k", Key: "x", Delete: true},
				{Kind: "k", Key: "y", Check: true, Rev: 300},
			},
			hex: "0102" + "01016b017800" + "00" + "02016b0179ac0200",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := encodeBatch(tt.ops)
			if got := hex.EncodeToString(b); got != tt.hex {
				t.Errorf("encoded %s, want %s", got, tt.hex)
			}
			got, err := decodeBatch(b)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.ops, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBatchDecodingRejects(t *testing.T) {
	good := encodeBatch([]state.Op{{Kind: "nodes", Key: "n1", Value: []byte(`1`)}})
	tests := []struct {
		name string
		data []byte
	}{
		{"nothing", nil},
		{"unknown version", append([]byte{2}, good[1:]...)},
		{"truncated", good[:len(good)-1]},
		{"trailing bytes", append(append([]byte(nil), good...), 0)},
		{"huge count", []byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decodeBatch(tt.data); !errors.Is(err, errBadBatch) {
				t.Errorf("decode: %v, want errBadBatch", err)
			}
		})
	}
}

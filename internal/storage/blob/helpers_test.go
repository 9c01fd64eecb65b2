package blob

import (
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/weftcloud/weft/internal/storage/boltlog"
)

func blockID(i int) string {
	return base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "block-%06d", i))
}

func nopCloser(s string) io.ReadSeekCloser {
	return streaming.NopCloser(strings.NewReader(s))
}

// assertNoData fails when any byte store, reference or block record is left.
func assertNoData(t testing.TB, s *Service) {
	t.Helper()
	err := s.view(func(tx *boltlog.Tx) error {
		for _, b := range [][]byte{bktBlobs, bktBlocks, bktPages, bktRefs, bktInline, bktDeleted} {
			n := 0
			_ = tx.Bucket(b).ForEach(func(k, v []byte) error { n++; return nil })
			if n != 0 {
				t.Errorf("bucket %s holds %d keys", b, n)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.files.sweep(func(string) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d data files left behind", n)
	}
}

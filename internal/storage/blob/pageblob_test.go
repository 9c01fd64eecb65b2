package blob

import (
	"bytes"
	"context"
	"net/http"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/appendblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"
	"github.com/google/go-cmp/cmp"
)

type span struct{ Start, End int64 }

func pageRanges(t *testing.T, ctx context.Context, pb *pageblob.Client, prev string) (pages, clears []span) {
	t.Helper()
	collect := func(pr []*pageblob.PageRange, cr []*pageblob.ClearRange) {
		for _, r := range pr {
			pages = append(pages, span{*r.Start, *r.End})
		}
		for _, r := range cr {
			clears = append(clears, span{*r.Start, *r.End})
		}
	}
	if prev == "" {
		pager := pb.NewGetPageRangesPager(nil)
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			collect(page.PageRange, page.ClearRange)
		}
		return pages, clears
	}
	pager := pb.NewGetPageRangesDiffPager(&pageblob.GetPageRangesDiffOptions{PrevSnapshot: to.Ptr(prev)})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		collect(page.PageRange, page.ClearRange)
	}
	return pages, clears
}

func TestPageBlob(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cc := e.container(t, "disks")
	pb := cc.NewPageBlobClient("disk.vhd")
	const size = 1 << 20
	if _, err := pb.Create(ctx, size, &pageblob.CreateOptions{SequenceNumber: to.Ptr[int64](7)}); err != nil {
		t.Fatal(err)
	}
	model := make([]byte, size)
	write := func(off int64, data []byte) {
		t.Helper()
		if _, err := pb.UploadPages(ctx, streaming.NopCloser(bytes.NewReader(data)), blob.HTTPRange{Offset: off, Count: int64(len(data))}, nil); err != nil {
			t.Fatalf("write at %d: %v", off, err)
		}
		copy(model[off:], data)
	}
	write(0, randBytes(4096, 1))
	write(4096, randBytes(512, 2)) // adjacent: merges
	write(65536, randBytes(8192, 3))
	write(69632, randBytes(4096, 4)) // overlaps the previous range
	pages, _ := pageRanges(t, ctx, pb, "")
	if diff := cmp.Diff([]span{{0, 4607}, {65536, 73727}}, pages); diff != "" {
		t.Fatalf("page ranges (-want +got):\n%s", diff)
	}
	if got := download(t, ctx, pb.BlobClient(), nil); !bytes.Equal(got, model) {
		t.Fatal("content differs")
	}

	// Misaligned writes are refused.
	_, err := pb.UploadPages(ctx, streaming.NopCloser(bytes.NewReader(make([]byte, 100))), blob.HTTPRange{Offset: 0, Count: 100}, nil)
	if err == nil {
		t.Fatal("misaligned write accepted")
	}
	_, err = pb.UploadPages(ctx, streaming.NopCloser(bytes.NewReader(make([]byte, 512))), blob.HTTPRange{Offset: size, Count: 512}, nil)
	wantCode(t, err, http.StatusRequestedRangeNotSatisfiable, "InvalidPageRange")

	snap, err := pb.CreateSnapshot(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	snapModel := bytes.Clone(model)
	write(8192, randBytes(1024, 5))
	if _, err := pb.ClearPages(ctx, blob.HTTPRange{Offset: 65536, Count: 4096}, nil); err != nil {
		t.Fatal(err)
	}
	clear(model[65536 : 65536+4096])
	pages, _ = pageRanges(t, ctx, pb, "")
	if diff := cmp.Diff([]span{{0, 4607}, {8192, 9215}, {69632, 73727}}, pages); diff != "" {
		t.Fatalf("page ranges after clear (-want +got):\n%s", diff)
	}
	pages, clears := pageRanges(t, ctx, pb, *snap.Snapshot)
	if diff := cmp.Diff([]span{{8192, 9215}}, pages); diff != "" {
		t.Errorf("diff pages (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]span{{65536, 69631}}, clears); diff != "" {
		t.Errorf("diff clears (-want +got):\n%s", diff)
	}
	if got := download(t, ctx, pb.BlobClient(), nil); !bytes.Equal(got, model) {
		t.Fatal("content differs after clear")
	}
	snapClient, err := pb.WithSnapshot(*snap.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	if got := download(t, ctx, snapClient.BlobClient(), nil); !bytes.Equal(got, snapModel) {
		t.Fatal("snapshot content changed")
	}

	// Sequence numbers gate writes.
	_, err = pb.UploadPages(ctx, streaming.NopCloser(bytes.NewReader(make([]byte, 512))), blob.HTTPRange{Offset: 0, Count: 512},
		&pageblob.UploadPagesOptions{SequenceNumberAccessConditions: &pageblob.SequenceNumberAccessConditions{IfSequenceNumberLessThan: to.Ptr[int64](7)}})
	wantCode(t, err, http.StatusPreconditionFailed, "SequenceNumberConditionNotMet")
	for _, tc := range []struct {
		action pageblob.SequenceNumberActionType
		n      *int64
		want   int64
	}{
		{pageblob.SequenceNumberActionTypeIncrement, nil, 8},
		{pageblob.SequenceNumberActionTypeMax, to.Ptr[int64](3), 8},
		{pageblob.SequenceNumberActionTypeMax, to.Ptr[int64](20), 20},
		{pageblob.SequenceNumberActionTypeUpdate, to.Ptr[int64](5), 5},
	} {
		resp, err := pb.UpdateSequenceNumber(ctx, &pageblob.UpdateSequenceNumberOptions{ActionType: to.Ptr(tc.action), SequenceNumber: tc.n})
		if err != nil {
			t.Fatal(err)
		}
		if *resp.BlobSequenceNumber != tc.want {
			t.Errorf("%s: sequence number %d, want %d", tc.action, *resp.BlobSequenceNumber, tc.want)
		}
	}
	_, err = pb.UploadPages(ctx, streaming.NopCloser(bytes.NewReader(make([]byte, 512))), blob.HTTPRange{Offset: 0, Count: 512},
		&pageblob.UploadPagesOptions{SequenceNumberAccessConditions: &pageblob.SequenceNumberAccessConditions{IfSequenceNumberEqualTo: to.Ptr[int64](5)}})
	if err != nil {
		t.Fatal(err)
	}
	copy(model, make([]byte, 512))

	// Shrink drops pages past the end; growing back shows zeros.
	if _, err := pb.Resize(ctx, 65536+2048, nil); err != nil {
		t.Fatal(err)
	}
	pages, _ = pageRanges(t, ctx, pb, "")
	if diff := cmp.Diff([]span{{0, 4607}, {8192, 9215}}, pages); diff != "" {
		t.Fatalf("page ranges after shrink (-want +got):\n%s", diff)
	}
	if _, err := pb.Resize(ctx, size, nil); err != nil {
		t.Fatal(err)
	}
	clear(model[65536+2048:])
	if got := download(t, ctx, pb.BlobClient(), nil); !bytes.Equal(got, model) {
		t.Fatal("content differs after resize")
	}
	props, err := pb.GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *props.ContentLength != size || *props.BlobSequenceNumber != 5 || *props.BlobType != blob.BlobTypePageBlob {
		t.Fatalf("properties: len %d seq %d type %s", *props.ContentLength, *props.BlobSequenceNumber, *props.BlobType)
	}
	if _, err := pb.Delete(ctx, &blob.DeleteOptions{DeleteSnapshots: to.Ptr(blob.DeleteSnapshotsOptionTypeInclude)}); err != nil {
		t.Fatal(err)
	}
	assertNoData(t, e.svc)
}

func TestAppendBlob(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cc := e.container(t, "logs")
	ab := cc.NewAppendBlobClient("log.txt")
	if _, err := ab.Create(ctx, nil); err != nil {
		t.Fatal(err)
	}
	var model []byte
	for i, s := range []string{"one\n", "two\n", "three\n"} {
		resp, err := ab.AppendBlock(ctx, nopCloser(s), nil)
		if err != nil {
			t.Fatal(err)
		}
		if *resp.BlobAppendOffset != "" && *resp.BlobCommittedBlockCount != int32(i+1) {
			t.Errorf("committed count %d", *resp.BlobCommittedBlockCount)
		}
		model = append(model, s...)
	}
	_, err := ab.AppendBlock(ctx, nopCloser("x"), &appendblob.AppendBlockOptions{
		AppendPositionAccessConditions: &appendblob.AppendPositionAccessConditions{AppendPosition: to.Ptr[int64](3)}})
	wantCode(t, err, http.StatusPreconditionFailed, "AppendPositionConditionNotMet")
	_, err = ab.AppendBlock(ctx, nopCloser("four\n"), &appendblob.AppendBlockOptions{
		AppendPositionAccessConditions: &appendblob.AppendPositionAccessConditions{MaxSize: to.Ptr[int64](int64(len(model) + 2))}})
	wantCode(t, err, http.StatusPreconditionFailed, "MaxBlobSizeConditionNotMet")
	snap, err := ab.CreateSnapshot(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ab.AppendBlock(ctx, nopCloser("four\n"), &appendblob.AppendBlockOptions{
		AppendPositionAccessConditions: &appendblob.AppendPositionAccessConditions{AppendPosition: to.Ptr(int64(len(model)))}})
	if err != nil {
		t.Fatal(err)
	}
	snapModel := bytes.Clone(model)
	model = append(model, "four\n"...)
	if got := download(t, ctx, ab.BlobClient(), nil); string(got) != string(model) {
		t.Fatalf("content %q", got)
	}
	sc, _ := ab.WithSnapshot(*snap.Snapshot)
	if got := download(t, ctx, sc.BlobClient(), nil); string(got) != string(snapModel) {
		t.Fatalf("snapshot content %q", got)
	}
	// Appending to a block blob is refused.
	if _, err := e.client.UploadBuffer(ctx, "logs", "block", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	_, err = cc.NewAppendBlobClient("block").AppendBlock(ctx, nopCloser("x"), nil)
	wantCode(t, err, http.StatusConflict, "InvalidBlobType")
}

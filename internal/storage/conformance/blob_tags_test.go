package conformance

// Blob service: blob index tags (Set and Get Blob Tags, Find Blobs by
// Tags on the account and in a container).

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
	"github.com/google/go-cmp/cmp"

	"github.com/weftcloud/weft/internal/storage"
)

func TestBlob_SetBlobTags(t *testing.T) {
	cover(t, storage.Blob, "Set Blob Tags")
	env := newBlobEnv(t)
	cc := env.container(t, "tagged")
	bc := env.upload(t, cc, "b", "data", teamTags)
	ctx := context.Background()
	t.Run("success", func(t *testing.T) {
		before, err := bc.GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bc.SetTags(ctx, map[string]string{"Project": "Contoso 2", "path": "a/b:c=d_e+f-g.h", "empty": ""}, nil); err != nil {
			t.Fatal(err)
		}
		got, err := bc.GetTags(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(got.BlobTagSet); n != 3 {
			t.Errorf("%d tags after set, want 3", n)
		}
		// Tags are not content: the ETag stays.
		after, err := bc.GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *after.ETag != *before.ETag || *after.TagCount != 3 {
			t.Errorf("after Set Blob Tags: ETag %s (was %s), tag count %v", *after.ETag, *before.ETag, *after.TagCount)
		}
	})
	t.Run("answer", func(t *testing.T) {
		r := env.do(t, http.MethodPut, "/tagged/b?comp=tags", map[string]string{"Content-Type": "application/xml"},
			[]byte(`<?xml version="1.0" encoding="utf-8"?><Tags><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tags>`))
		r.want(t, http.StatusNoContent, "")
	})
	t.Run("InvalidTag", func(t *testing.T) {
		// Azure's rules: at most 10 tags; keys 1 to 128 characters, values
		// up to 256, of letters, digits, space and + - . / : = _; no key twice.
		eleven := map[string]string{}
		for i := range 11 {
			eleven[fmt.Sprintf("k%d", i)] = "v"
		}
		for name, tags := range map[string]map[string]string{
			"eleven tags":     eleven,
			"long key":        {strings.Repeat("k", 129): "v"},
			"long value":      {"k": strings.Repeat("v", 257)},
			"key character":   {"k*": "v"},
			"value character": {"k": "v?"},
			"non-ASCII":       {"k": "é"},
		} {
			_, err := bc.SetTags(ctx, tags, nil)
			if err == nil {
				t.Errorf("%s: accepted", name)
				continue
			}
			wantErr(t, err, http.StatusBadRequest, "InvalidTag")
		}
		r := env.do(t, http.MethodPut, "/tagged/b?comp=tags", map[string]string{"Content-Type": "application/xml"},
			[]byte(`<Tags><TagSet><Tag><Key>k</Key><Value>1</Value></Tag><Tag><Key>k</Key><Value>2</Value></Tag></TagSet></Tags>`))
		r.want(t, http.StatusBadRequest, "InvalidTag")
		// None of the refused sets replaced the tags.
		got, err := bc.GetTags(ctx, nil)
		if err != nil || len(got.BlobTagSet) != 1 || *got.BlobTagSet[0].Key != "k" {
			t.Errorf("tags after refused sets: %+v, %v", got.BlobTagSet, err)
		}
		// x-ms-tags on a write is held to the same rules.
		_, err = cc.NewBlockBlobClient("c").Upload(ctx, body("x"), &blockblob.UploadOptions{Tags: map[string]string{"bad*key": "v"}})
		wantErr(t, err, http.StatusBadRequest, "InvalidTag")
	})
	t.Run("snapshot", func(t *testing.T) {
		// A snapshot keeps the tags the blob had; setting tags on one is refused.
		if _, err := bc.SetTags(ctx, teamTags, nil); err != nil {
			t.Fatal(err)
		}
		snap, err := bc.CreateSnapshot(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bc.SetTags(ctx, map[string]string{"team": "red"}, nil); err != nil {
			t.Fatal(err)
		}
		sc, err := bc.WithSnapshot(*snap.Snapshot)
		if err != nil {
			t.Fatal(err)
		}
		got, err := sc.GetTags(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(teamTags, tagMap(got.BlobTagSet)); diff != "" {
			t.Errorf("snapshot tags (-want +got):\n%s", diff)
		}
		_, err = sc.SetTags(ctx, map[string]string{"x": "y"}, nil)
		wantErr(t, err, http.StatusBadRequest, "InvalidQueryParameterValue")
		if _, err := bc.SetTags(ctx, teamTags, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("BlobNotFound", func(t *testing.T) {
		_, err := cc.NewBlobClient("absent").SetTags(ctx, teamTags, nil)
		wantErr(t, err, http.StatusNotFound, "BlobNotFound")
	})
	checkIfTags(t, func(cond string) error {
		_, err := bc.SetTags(ctx, teamTags, &blob.SetTagsOptions{AccessConditions: ifTagsAccess(cond)})
		return err
	})
}

func TestBlob_GetBlobTags(t *testing.T) {
	cover(t, storage.Blob, "Get Blob Tags")
	env := newBlobEnv(t)
	cc := env.container(t, "tagged")
	bc := env.upload(t, cc, "b", "data", teamTags)
	ctx := context.Background()
	t.Run("success", func(t *testing.T) {
		got, err := bc.GetTags(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(teamTags, tagMap(got.BlobTagSet)); diff != "" {
			t.Errorf("tags (-want +got):\n%s", diff)
		}
		r := env.do(t, http.MethodGet, "/tagged/b?comp=tags", nil, nil)
		r.want(t, http.StatusOK, "")
		if !strings.Contains(string(r.body), "<Tags><TagSet><Tag><Key>team</Key><Value>blue</Value></Tag>") {
			t.Errorf("body %s", r.body)
		}
	})
	t.Run("BlobNotFound", func(t *testing.T) {
		_, err := cc.NewBlobClient("absent").GetTags(ctx, nil)
		wantErr(t, err, http.StatusNotFound, "BlobNotFound")
	})
	checkIfTags(t, func(cond string) error {
		_, err := bc.GetTags(ctx, &blob.GetTagsOptions{BlobAccessConditions: ifTagsAccess(cond)})
		return err
	})
}

// findFixture makes the blobs the Find Blobs by Tags tests search: in two
// containers, with overlapping tags.
func findFixture(t *testing.T, env *blobEnv) {
	t.Helper()
	one, two := env.container(t, "one"), env.container(t, "two")
	env.upload(t, one, "a", "", map[string]string{"project": "alpha", "date": "2020-01-05"})
	env.upload(t, one, "b", "", map[string]string{"project": "beta", "date": "2020-02-01"})
	env.upload(t, one, "c", "", map[string]string{"project": "alpha", "date": "2021-01-01", "owner": "ann"})
	env.upload(t, two, "a", "", map[string]string{"project": "alpha", "date": "2020-03-01"})
	env.upload(t, two, "untagged", "", nil)
}

// found is the container/name list of a Find Blobs by Tags answer.
func found(blobs []*service.FilterBlobItem) []string {
	out := []string{}
	for _, b := range blobs {
		out = append(out, *b.ContainerName+"/"+*b.Name)
	}
	slices.Sort(out)
	return out
}

func TestBlob_FindBlobsByTags(t *testing.T) {
	cover(t, storage.Blob, "Find Blobs by Tags")
	env := newBlobEnv(t)
	findFixture(t, env)
	ctx := context.Background()
	find := func(t *testing.T, where string) []string {
		t.Helper()
		resp, err := env.svc.FilterBlobs(ctx, where, nil)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		return found(resp.Blobs)
	}
	t.Run("success", func(t *testing.T) {
		for where, want := range map[string][]string{
			`"project" = 'alpha'`:                                         {"one/a", "one/c", "two/a"},
			`"project" = 'alpha' AND @container = 'one'`:                  {"one/a", "one/c"},
			`"date" >= '2020-01-05' AND "date" < '2020-03-01'`:            {"one/a", "one/b"},
			`"date" > '2020-01-05'`:                                       {"one/b", "one/c", "two/a"},
			`"project" = 'alpha' AND "date" <= '2020-12-31'`:              {"one/a", "two/a"},
			`"owner" = 'ann' AND "project" = 'alpha'`:                     {"one/c"},
			`"project" = 'gamma'`:                                         {},
			`"Project" = 'alpha'`:                                         {}, // keys are case-sensitive
			`"project" = 'alpha' AND @container = 'none'`:                 {},
			`"date" > '2020' and "project" = 'beta' AND @container='one'`: {"one/b"},
		} {
			if got := find(t, where); !slices.Equal(got, want) {
				t.Errorf("%s: found %v, want %v", where, got, want)
			}
		}
	})
	t.Run("answer", func(t *testing.T) {
		// Each blob comes with the tags the expression names, and only those.
		resp, err := env.svc.FilterBlobs(ctx, `"project" = 'alpha' AND "owner" = 'ann'`, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Blobs) != 1 {
			t.Fatalf("found %v", found(resp.Blobs))
		}
		want := map[string]string{"project": "alpha", "owner": "ann"}
		if diff := cmp.Diff(want, tagMap(resp.Blobs[0].Tags.BlobTagSet)); diff != "" {
			t.Errorf("tags answered (-want +got):\n%s", diff)
		}
		if *resp.Where != `"project" = 'alpha' AND "owner" = 'ann'` {
			t.Errorf("Where %q", *resp.Where)
		}
	})
	t.Run("paging", func(t *testing.T) {
		var got []string
		var marker *string
		for range 5 {
			resp, err := env.svc.FilterBlobs(ctx, `"project" = 'alpha'`, &service.FilterBlobsOptions{MaxResults: to.Ptr[int32](1), Marker: marker})
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, found(resp.Blobs)...)
			if resp.NextMarker == nil || *resp.NextMarker == "" {
				break
			}
			marker = resp.NextMarker
		}
		slices.Sort(got)
		if want := []string{"one/a", "one/c", "two/a"}; !slices.Equal(got, want) {
			t.Errorf("pages found %v, want %v", got, want)
		}
	})
	t.Run("index follows writes", func(t *testing.T) {
		bc := env.svc.NewContainerClient("two").NewBlobClient("a")
		if _, err := bc.SetTags(ctx, map[string]string{"project": "beta"}, nil); err != nil {
			t.Fatal(err)
		}
		if got := find(t, `"project" = 'beta'`); !slices.Equal(got, []string{"one/b", "two/a"}) {
			t.Errorf("after Set Blob Tags: %v", got)
		}
		if _, err := bc.Delete(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := env.svc.DeleteContainer(ctx, "one", nil); err != nil {
			t.Fatal(err)
		}
		if got := find(t, `"project" = 'beta'`); len(got) != 0 {
			t.Errorf("after deletes: %v", got)
		}
	})
	t.Run("InvalidQueryParameterValue", func(t *testing.T) {
		for _, where := range []string{
			`project = 'alpha'`,                // key not in double quotes
			`"project" = alpha`,                // value not in single quotes
			`"project" <> 'alpha'`,             // <> is for conditions only
			`"a" = 'b' OR "c" = 'd'`,           // so is OR
			`@container = 'one'`,               // no tag comparison
			`"a" = 'b' AND @container > 'one'`, // @container takes =
			`"a" > '1' AND "a" >= '2'`,         // two ranges on one side
			`"a" = 'b' AND @container = 'x' AND @container = 'y'`,
			`"bad*key" = 'b'`,
		} {
			r := env.do(t, http.MethodGet, "/?comp=blobs&where="+url.QueryEscape(where), nil, nil)
			r.want(t, http.StatusBadRequest, "InvalidQueryParameterValue")
		}
		r := env.do(t, http.MethodGet, "/?comp=blobs&where="+url.QueryEscape(`"a" = 'b'`)+"&maxresults=0", nil, nil)
		r.want(t, http.StatusBadRequest, "InvalidQueryParameterValue")
	})
}

func TestBlob_FindBlobsByTagsInContainer(t *testing.T) {
	cover(t, storage.Blob, "Find Blobs by Tags in Container")
	env := newBlobEnv(t)
	findFixture(t, env)
	ctx := context.Background()
	t.Run("success", func(t *testing.T) {
		resp, err := env.svc.NewContainerClient("one").FilterBlobs(ctx, `"project" = 'alpha'`, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := found(resp.Blobs), []string{"one/a", "one/c"}; !slices.Equal(got, want) {
			t.Errorf("found %v, want %v", got, want)
		}
		resp, err = env.svc.NewContainerClient("two").FilterBlobs(ctx, `"date" < '2021'`, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := found(resp.Blobs), []string{"two/a"}; !slices.Equal(got, want) {
			t.Errorf("found %v, want %v", got, want)
		}
	})
	t.Run("ContainerNotFound", func(t *testing.T) {
		_, err := env.svc.NewContainerClient("absent").FilterBlobs(ctx, `"project" = 'alpha'`, nil)
		wantErr(t, err, http.StatusNotFound, "ContainerNotFound")
	})
	t.Run("InvalidQueryParameterValue", func(t *testing.T) {
		// The container is the URL's; the expression may not name one.
		_, err := env.svc.NewContainerClient("one").FilterBlobs(ctx, `"project" = 'alpha' AND @container = 'two'`, nil)
		wantErr(t, err, http.StatusBadRequest, "InvalidQueryParameterValue")
		_, err = env.svc.NewContainerClient("one").FilterBlobs(ctx, `"project" = `, nil)
		wantErr(t, err, http.StatusBadRequest, "InvalidQueryParameterValue")
	})
}

// tagMap turns an answered tag set into a map.
func tagMap(set []*blob.Tags) map[string]string {
	out := map[string]string{}
	for _, t := range set {
		out[*t.Key] = *t.Value
	}
	return out
}

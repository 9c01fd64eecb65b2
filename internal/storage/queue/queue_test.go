package queue

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/sas"
	"github.com/google/go-cmp/cmp"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/storagetest"
)

// fakeClock is the service's clock in tests, so visibility timeouts and
// expiry are reached by moving time, not by sleeping.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

type env struct {
	svc      *Service
	clock    *fakeClock
	endpoint string
	client   *azqueue.ServiceClient
}

func newEnv(t *testing.T) *env {
	t.Helper()
	svc, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := svc.Close(); err != nil {
			t.Error(err)
		}
	})
	clock := &fakeClock{}
	clock.ns.Store(time.Now().UnixNano())
	svc.now = clock.now
	ep := storagetest.Serve(t, storage.Queue, svc)
	client, err := azqueue.NewServiceClientFromConnectionString(storagetest.ConnectionString("", ep, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	return &env{svc: svc, clock: clock, endpoint: ep, client: client}
}

func (e *env) queue(t *testing.T, name string) *azqueue.QueueClient {
	t.Helper()
	q := e.client.NewQueueClient(name)
	if _, err := q.Create(context.Background(), nil); err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return q
}

// code returns the Azure error code of err, or "" when it is not one.
func code(err error) string {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

func status(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

func TestQueueLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	md := map[string]*string{"owner": to.Ptr("weft")}
	q := e.client.NewQueueClient("orders")
	if _, err := q.Create(ctx, &azqueue.CreateOptions{Metadata: md}); err != nil {
		t.Fatal(err)
	}
	// Same metadata: 204, accepted by the SDK; other metadata: 409.
	if _, err := q.Create(ctx, &azqueue.CreateOptions{Metadata: md}); err != nil {
		t.Fatalf("create again, same metadata: %v", err)
	}
	if _, err := q.Create(ctx, &azqueue.CreateOptions{Metadata: map[string]*string{"owner": to.Ptr("other")}}); code(err) != "QueueAlreadyExists" {
		t.Fatalf("create again, other metadata: %v, want QueueAlreadyExists", err)
	}
	if _, err := q.SetMetadata(ctx, &azqueue.SetMetadataOptions{Metadata: map[string]*string{"tier": to.Ptr("gold")}}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := q.EnqueueMessage(ctx, "m", nil); err != nil {
			t.Fatal(err)
		}
	}
	props, err := q.GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *props.ApproximateMessagesCount != 3 || props.Metadata["Tier"] == nil || *props.Metadata["Tier"] != "gold" {
		t.Fatalf("properties: count %d metadata %v", *props.ApproximateMessagesCount, props.Metadata)
	}
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	acl := []*azqueue.SignedIdentifier{{ID: to.Ptr("readers"), AccessPolicy: &azqueue.AccessPolicy{
		Start: &start, Expiry: to.Ptr(start.Add(time.Hour)), Permission: to.Ptr("r")}}}
	if _, err := q.SetAccessPolicy(ctx, &azqueue.SetAccessPolicyOptions{QueueACL: acl}); err != nil {
		t.Fatal(err)
	}
	got, err := q.GetAccessPolicy(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.SignedIdentifiers) != 1 || *got.SignedIdentifiers[0].ID != "readers" || *got.SignedIdentifiers[0].AccessPolicy.Permission != "r" ||
		!got.SignedIdentifiers[0].AccessPolicy.Start.Equal(start) {
		t.Fatalf("access policy = %+v", got.SignedIdentifiers)
	}
	if _, err := q.Delete(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := q.GetProperties(ctx, nil); code(err) != "QueueNotFound" {
		t.Fatalf("after delete: %v, want QueueNotFound", err)
	}
	if _, err := q.Delete(ctx, nil); code(err) != "QueueNotFound" {
		t.Fatalf("delete again: %v, want QueueNotFound", err)
	}
}

func TestListQueues(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var want []string
	for i := range 7 {
		name := fmt.Sprintf("jobs-%02d", i)
		want = append(want, name)
		if _, err := e.client.CreateQueue(ctx, name, &azqueue.CreateOptions{Metadata: map[string]*string{"n": to.Ptr(fmt.Sprint(i))}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.client.CreateQueue(ctx, "other", nil); err != nil {
		t.Fatal(err)
	}
	pager := e.client.NewListQueuesPager(&azqueue.ListQueuesOptions{Prefix: to.Ptr("jobs-"), MaxResults: to.Ptr[int32](3), Include: azqueue.ListQueuesInclude{Metadata: true}})
	var got []string
	pages := 0
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, q := range page.Queues {
			got = append(got, *q.Name)
			if q.Metadata["n"] == nil {
				t.Errorf("queue %s listed without metadata: %v", *q.Name, q.Metadata)
			}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("listed queues (-want +got):\n%s", diff)
	}
	if pages != 3 {
		t.Fatalf("pages = %d, want 3", pages)
	}
}

func TestMessages(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	q := e.queue(t, "work")
	for _, text := range []string{"one", "two", "<three & four>"} {
		res, err := q.EnqueueMessage(ctx, text, nil)
		if err != nil {
			t.Fatal(err)
		}
		if m := res.Messages[0]; m.MessageID == nil || m.PopReceipt == nil || m.ExpirationTime == nil {
			t.Fatalf("enqueue answer %+v", m)
		}
	}
	peek, err := q.PeekMessages(ctx, &azqueue.PeekMessagesOptions{NumberOfMessages: to.Ptr[int32](32)})
	if err != nil {
		t.Fatal(err)
	}
	if len(peek.Messages) != 3 || *peek.Messages[2].MessageText != "<three & four>" || *peek.Messages[0].DequeueCount != 0 {
		t.Fatalf("peek = %d messages, last %q, dequeue count %d", len(peek.Messages), *peek.Messages[len(peek.Messages)-1].MessageText, *peek.Messages[0].DequeueCount)
	}
	got, err := q.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: to.Ptr[int32](2), VisibilityTimeout: to.Ptr[int32](60)})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Messages) != 2 || *got.Messages[0].MessageText != "one" || *got.Messages[0].DequeueCount != 1 {
		t.Fatalf("dequeue = %+v", got.Messages)
	}
	first := got.Messages[0]
	// Invisible messages are neither peeked nor dequeued.
	rest, err := q.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: to.Ptr[int32](32)})
	if err != nil {
		t.Fatal(err)
	}
	if len(rest.Messages) != 1 || *rest.Messages[0].MessageText != "<three & four>" {
		t.Fatalf("second dequeue = %d messages", len(rest.Messages))
	}
	// Update: new text and visibility, new pop receipt; the old one stops working.
	up, err := q.UpdateMessage(ctx, *first.MessageID, *first.PopReceipt, "one, updated", &azqueue.UpdateMessageOptions{VisibilityTimeout: to.Ptr[int32](0)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.DeleteMessage(ctx, *first.MessageID, *first.PopReceipt, nil); code(err) != "PopReceiptMismatch" || status(err) != http.StatusBadRequest {
		t.Fatalf("delete with old receipt: %v, want 400 PopReceiptMismatch", err)
	}
	again, err := q.DequeueMessages(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Messages) != 1 || *again.Messages[0].MessageText != "one, updated" || *again.Messages[0].DequeueCount != 2 {
		t.Fatalf("dequeue after update = %+v", again.Messages)
	}
	if *again.Messages[0].PopReceipt == *up.PopReceipt {
		t.Fatal("dequeue did not issue a new pop receipt")
	}
	if _, err := q.DeleteMessage(ctx, *again.Messages[0].MessageID, *again.Messages[0].PopReceipt, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := q.DeleteMessage(ctx, *again.Messages[0].MessageID, *again.Messages[0].PopReceipt, nil); code(err) != "MessageNotFound" {
		t.Fatalf("delete twice: %v, want MessageNotFound", err)
	}
	if _, err := q.ClearMessages(ctx, nil); err != nil {
		t.Fatal(err)
	}
	e.clock.advance(time.Hour)
	left, err := q.PeekMessages(ctx, &azqueue.PeekMessagesOptions{NumberOfMessages: to.Ptr[int32](32)})
	if err != nil {
		t.Fatal(err)
	}
	props, err := q.GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(left.Messages) != 0 || *props.ApproximateMessagesCount != 0 {
		t.Fatalf("after clear: %d messages, count %d", len(left.Messages), *props.ApproximateMessagesCount)
	}
}

// TestAtLeastOnce: a message not deleted before its visibility timeout
// ends is delivered again, and one past its TTL is gone.
func TestAtLeastOnce(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	q := e.queue(t, "retry")
	if _, err := q.EnqueueMessage(ctx, "job", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := q.EnqueueMessage(ctx, "short-lived", &azqueue.EnqueueMessageOptions{TimeToLive: to.Ptr[int32](90)}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.EnqueueMessage(ctx, "forever", &azqueue.EnqueueMessageOptions{TimeToLive: to.Ptr[int32](-1), VisibilityTimeout: to.Ptr[int32](120)}); err != nil {
		t.Fatal(err)
	}
	got, err := q.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: to.Ptr[int32](32), VisibilityTimeout: to.Ptr[int32](30)})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Messages) != 2 {
		t.Fatalf("first dequeue: %d messages, want 2 (one is delayed)", len(got.Messages))
	}
	e.clock.advance(29 * time.Second)
	if got, _ := q.DequeueMessages(ctx, nil); len(got.Messages) != 0 {
		t.Fatalf("a message came back before its visibility timeout")
	}
	e.clock.advance(2 * time.Second)
	got, err = q.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: to.Ptr[int32](32)})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Messages) != 2 || *got.Messages[0].DequeueCount != 2 {
		t.Fatalf("after the timeout: %+v", got.Messages)
	}
	e.clock.advance(100 * time.Second) // past short-lived's TTL and forever's delay
	peek, err := q.PeekMessages(ctx, &azqueue.PeekMessagesOptions{NumberOfMessages: to.Ptr[int32](32)})
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, m := range peek.Messages {
		texts = append(texts, *m.MessageText)
		if *m.MessageText == "forever" && m.ExpirationTime.Year() != 9999 {
			t.Errorf("TTL -1 expires %v, want year 9999", m.ExpirationTime)
		}
	}
	if diff := cmp.Diff([]string{"job", "forever"}, texts); diff != "" {
		t.Fatalf("visible after expiry (-want +got):\n%s", diff)
	}
}

func TestConcurrentConsumers(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	q := e.queue(t, "fanout")
	const n = 60
	for i := range n {
		if _, err := q.EnqueueMessage(ctx, fmt.Sprint(i), nil); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				got, err := q.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: to.Ptr[int32](5)})
				if err != nil {
					t.Error(err)
					return
				}
				if len(got.Messages) == 0 {
					return
				}
				for _, m := range got.Messages {
					mu.Lock()
					seen[*m.MessageText]++
					mu.Unlock()
					if _, err := q.DeleteMessage(ctx, *m.MessageID, *m.PopReceipt, nil); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("consumed %d distinct messages, want %d", len(seen), n)
	}
	for text, c := range seen {
		if c != 1 {
			t.Errorf("message %s delivered %d times within its visibility timeout", text, c)
		}
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name, code string
	}{
		{"ab", "OutOfRangeInput"},
		{"a234567890123456789012345678901234567890123456789012345678901234", "OutOfRangeInput"},
		{"Upper", "InvalidResourceName"},
		{"-dash", "InvalidResourceName"},
		{"dash-", "InvalidResourceName"},
		{"two--dashes", "InvalidResourceName"},
		{"under_score", "InvalidResourceName"},
	} {
		if _, err := e.client.CreateQueue(ctx, tc.name, nil); code(err) != tc.code || status(err) != http.StatusBadRequest {
			t.Errorf("create %q: %v, want 400 %s", tc.name, err, tc.code)
		}
	}
	q := e.queue(t, "limits")
	big := make([]byte, maxMessageText+1)
	for i := range big {
		big[i] = 'x'
	}
	if _, err := q.EnqueueMessage(ctx, string(big), nil); code(err) != "RequestBodyTooLarge" || status(err) != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized message: %v, want 413 RequestBodyTooLarge", err)
	}
	if _, err := q.EnqueueMessage(ctx, string(big[:maxMessageText]), nil); err != nil {
		t.Errorf("64 KiB message: %v", err)
	}
	if _, err := q.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: to.Ptr[int32](33)}); code(err) != "OutOfRangeQueryParameterValue" {
		t.Errorf("33 messages: %v, want OutOfRangeQueryParameterValue", err)
	}
	if _, err := q.EnqueueMessage(ctx, "x", &azqueue.EnqueueMessageOptions{TimeToLive: to.Ptr[int32](10), VisibilityTimeout: to.Ptr[int32](20)}); status(err) != http.StatusBadRequest {
		t.Errorf("visibility beyond TTL: %v, want 400", err)
	}
	if _, err := e.client.NewQueueClient("missing").EnqueueMessage(ctx, "x", nil); code(err) != "QueueNotFound" {
		t.Errorf("enqueue to a missing queue: %v, want QueueNotFound", err)
	}
	props, err := q.GetProperties(ctx, nil)
	if err != nil || *props.ApproximateMessagesCount != 1 {
		t.Errorf("bad input changed the queue: %v %v", err, props.ApproximateMessagesCount)
	}
}

func TestSAS(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	q := e.queue(t, "shared")
	if _, err := q.EnqueueMessage(ctx, "hello", nil); err != nil {
		t.Fatal(err)
	}
	cred, err := azqueue.NewSharedKeyCredential(storage.DevAccount, storage.DevKey)
	if err != nil {
		t.Fatal(err)
	}
	sasClient := func(perms sas.QueuePermissions) *azqueue.QueueClient {
		t.Helper()
		qp, err := sas.QueueSignatureValues{
			Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: time.Now().Add(time.Hour).UTC(),
			Permissions: perms.String(), QueueName: "shared",
		}.SignWithSharedKey(cred)
		if err != nil {
			t.Fatal(err)
		}
		c, err := azqueue.NewQueueClientWithNoCredential(e.endpoint+"/shared?"+qp.Encode(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	reader := sasClient(sas.QueuePermissions{Read: true})
	if got, err := reader.PeekMessages(ctx, nil); err != nil || len(got.Messages) != 1 {
		t.Fatalf("peek with r: %v", err)
	}
	if _, err := reader.EnqueueMessage(ctx, "nope", nil); code(err) != "AuthorizationPermissionMismatch" {
		t.Fatalf("enqueue with r: %v, want AuthorizationPermissionMismatch", err)
	}
	if _, err := reader.DequeueMessages(ctx, nil); code(err) != "AuthorizationPermissionMismatch" {
		t.Fatalf("dequeue with r: %v, want AuthorizationPermissionMismatch", err)
	}
	worker := sasClient(sas.QueuePermissions{Add: true, Process: true})
	if _, err := worker.EnqueueMessage(ctx, "more", nil); err != nil {
		t.Fatalf("enqueue with a: %v", err)
	}
	got, err := worker.DequeueMessages(ctx, nil)
	if err != nil || len(got.Messages) != 1 {
		t.Fatalf("dequeue with p: %v", err)
	}
	if _, err := worker.DeleteMessage(ctx, *got.Messages[0].MessageID, *got.Messages[0].PopReceipt, nil); err != nil {
		t.Fatalf("delete with p: %v", err)
	}
	// A SAS for one queue does not open another.
	if _, err := e.client.CreateQueue(ctx, "private", nil); err != nil {
		t.Fatal(err)
	}
	qp, _ := sas.QueueSignatureValues{ExpiryTime: time.Now().Add(time.Hour).UTC(), Permissions: "r", QueueName: "shared"}.SignWithSharedKey(cred)
	other, _ := azqueue.NewQueueClientWithNoCredential(e.endpoint+"/private?"+qp.Encode(), nil)
	if _, err := other.PeekMessages(ctx, nil); code(err) != "AuthenticationFailed" {
		t.Fatalf("SAS for another queue: %v, want AuthenticationFailed", err)
	}
	// The service client's GetSASURL signs for https only: refused on http.
	u, err := e.client.GetSASURL(sas.AccountResourceTypes{Service: true, Container: true, Object: true},
		sas.AccountPermissions{Read: true, List: true}, time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	httpsOnly, _ := azqueue.NewServiceClientWithNoCredential(u, nil)
	if _, err := httpsOnly.NewListQueuesPager(nil).NextPage(ctx); code(err) != "AuthorizationProtocolMismatch" {
		t.Fatalf("https-only SAS over http: %v, want AuthorizationProtocolMismatch", err)
	}
	ap, err := sas.AccountSignatureValues{
		Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: time.Now().Add(time.Hour).UTC(),
		Permissions:   (&sas.AccountPermissions{Read: true, List: true}).String(),
		ResourceTypes: (&sas.AccountResourceTypes{Service: true, Container: true, Object: true}).String(),
	}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	acct, err := azqueue.NewServiceClientWithNoCredential(e.endpoint+"/?"+ap.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	page, err := acct.NewListQueuesPager(nil).NextPage(ctx)
	if err != nil || len(page.Queues) != 2 {
		t.Fatalf("list with account SAS: %v", err)
	}
	if _, err := acct.CreateQueue(ctx, "newone", nil); code(err) != "AuthorizationPermissionMismatch" {
		t.Fatalf("create with an r/l account SAS: %v, want AuthorizationPermissionMismatch", err)
	}
}

// TestStoredAccessPolicy sets a queue's policies, uses a SAS that names
// one, and revokes it by removing the policy.
func TestStoredAccessPolicy(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	q := e.queue(t, "policed")
	if _, err := q.EnqueueMessage(ctx, "hello", nil); err != nil {
		t.Fatal(err)
	}
	expiry := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	acl := []*azqueue.SignedIdentifier{
		{ID: to.Ptr("peek"), AccessPolicy: &azqueue.AccessPolicy{Permission: to.Ptr("r"), Expiry: &expiry}},
		{ID: to.Ptr("later"), AccessPolicy: &azqueue.AccessPolicy{Permission: to.Ptr("raup"), Start: to.Ptr(expiry), Expiry: to.Ptr(expiry.Add(time.Hour))}},
	}
	if _, err := q.SetAccessPolicy(ctx, &azqueue.SetAccessPolicyOptions{QueueACL: acl}); err != nil {
		t.Fatal(err)
	}
	got, err := q.GetAccessPolicy(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(l []*azqueue.SignedIdentifier) (out []string) {
		for _, si := range l {
			out = append(out, *si.ID+":"+*si.AccessPolicy.Permission+":"+si.AccessPolicy.Expiry.UTC().Format(time.RFC3339))
		}
		return out
	}
	if diff := cmp.Diff(ids(acl), ids(got.SignedIdentifiers)); diff != "" {
		t.Fatalf("policies (-set +got):\n%s", diff)
	}

	cred, err := azqueue.NewSharedKeyCredential(storage.DevAccount, storage.DevKey)
	if err != nil {
		t.Fatal(err)
	}
	client := func(v sas.QueueSignatureValues) *azqueue.QueueClient {
		t.Helper()
		v.Protocol, v.QueueName = sas.ProtocolHTTPSandHTTP, "policed"
		qp, err := v.SignWithSharedKey(cred)
		if err != nil {
			t.Fatal(err)
		}
		c, err := azqueue.NewQueueClientWithNoCredential(e.endpoint+"/policed?"+qp.Encode(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	peeker := client(sas.QueueSignatureValues{Identifier: "peek"})
	if got, err := peeker.PeekMessages(ctx, nil); err != nil || len(got.Messages) != 1 {
		t.Fatalf("peek under the policy: %v", err)
	}
	if _, err := peeker.EnqueueMessage(ctx, "nope", nil); code(err) != "AuthorizationPermissionMismatch" {
		t.Fatalf("enqueue under a read policy: %v, want AuthorizationPermissionMismatch", err)
	}
	if _, err := peeker.GetAccessPolicy(ctx, nil); code(err) != "AuthorizationFailure" {
		t.Fatalf("read the ACL with a service SAS: %v, want AuthorizationFailure", err)
	}
	if _, err := client(sas.QueueSignatureValues{Identifier: "later"}).PeekMessages(ctx, nil); code(err) != "AuthenticationFailed" {
		t.Fatalf("peek before the policy starts: %v, want AuthenticationFailed", err)
	}
	if _, err := client(sas.QueueSignatureValues{Identifier: "peek", Permissions: "r"}).PeekMessages(ctx, nil); code(err) != "AuthenticationFailed" {
		t.Fatalf("permission in the SAS and the policy: %v, want AuthenticationFailed", err)
	}

	// Bad input changes nothing.
	six := make([]*azqueue.SignedIdentifier, 6)
	for i := range six {
		six[i] = &azqueue.SignedIdentifier{ID: to.Ptr(fmt.Sprint("p", i)), AccessPolicy: &azqueue.AccessPolicy{Permission: to.Ptr("r")}}
	}
	for _, bad := range [][]*azqueue.SignedIdentifier{six, {{ID: to.Ptr(fmt.Sprintf("%065d", 0)), AccessPolicy: &azqueue.AccessPolicy{}}}} {
		if _, err := q.SetAccessPolicy(ctx, &azqueue.SetAccessPolicyOptions{QueueACL: bad}); status(err) != http.StatusBadRequest || code(err) != "InvalidXmlDocument" {
			t.Fatalf("bad ACL: %v, want 400 InvalidXmlDocument", err)
		}
	}
	if _, err := peeker.PeekMessages(ctx, nil); err != nil {
		t.Fatalf("peek after refused ACLs: %v", err)
	}

	// Removing the policy revokes the SAS at once.
	if _, err := q.SetAccessPolicy(ctx, &azqueue.SetAccessPolicyOptions{QueueACL: acl[1:]}); err != nil {
		t.Fatal(err)
	}
	if _, err := peeker.PeekMessages(ctx, nil); code(err) != "AuthenticationFailed" {
		t.Fatalf("peek after the policy was removed: %v, want AuthenticationFailed", err)
	}
}

// TestMetadataNameCase keeps metadata names in the case they were written
// and compares them regardless of case.
func TestMetadataNameCase(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	md := map[string]*string{"MyKey": to.Ptr("v")}
	if _, err := e.client.CreateQueue(ctx, "cased", &azqueue.CreateOptions{Metadata: md}); err != nil {
		t.Fatal(err)
	}
	// The same metadata under another case is the same queue: 204.
	if _, err := e.client.CreateQueue(ctx, "cased", &azqueue.CreateOptions{Metadata: map[string]*string{"MYKEY": to.Ptr("v")}}); err != nil {
		t.Fatalf("create again with the name in another case: %v", err)
	}
	// The SDK lower-cases names it reads from listings, so the listing is
	// checked as sent.
	key, _ := base64.StdEncoding.DecodeString(storage.DevKey)
	req, _ := http.NewRequest(http.MethodGet, e.endpoint+"?comp=list&include=metadata", nil)
	storage.SignSharedKey(req, storage.Queue, storage.DevAccount, key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "<Metadata><MyKey>v</MyKey></Metadata>") {
		t.Fatalf("List Queues: %d %s", resp.StatusCode, body)
	}
}

// TestMetadataTooLarge: queue metadata is held to the 8 KiB of names and
// values Azure allows, on Create Queue and Set Queue Metadata.
func TestMetadataTooLarge(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	over := map[string]*string{"Big": to.Ptr(strings.Repeat("v", storage.MaxMetadataSize-2))}
	fits := map[string]*string{"Big": to.Ptr(strings.Repeat("v", storage.MaxMetadataSize-3))}
	_, err := e.client.CreateQueue(ctx, "big", &azqueue.CreateOptions{Metadata: over})
	if code(err) != "MetadataTooLarge" || status(err) != http.StatusBadRequest {
		t.Fatalf("Create Queue with 8 KiB + 1 of metadata: %v, want 400 MetadataTooLarge", err)
	}
	q := e.queue(t, "big")
	_, err = q.SetMetadata(ctx, &azqueue.SetMetadataOptions{Metadata: over})
	if code(err) != "MetadataTooLarge" || status(err) != http.StatusBadRequest {
		t.Fatalf("Set Queue Metadata with 8 KiB + 1: %v, want 400 MetadataTooLarge", err)
	}
	if _, err := q.SetMetadata(ctx, &azqueue.SetMetadataOptions{Metadata: fits}); err != nil {
		t.Errorf("Set Queue Metadata of 8 KiB: %v", err)
	}
}

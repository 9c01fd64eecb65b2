package conformance

// Queue service: operations on messages.

import (
	"context"
	"encoding/xml"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/weftcloud/weft/internal/storage"
)

// queueMessage is one QueueMessage of a QueueMessagesList answer.
type queueMessage struct {
	MessageID       string `xml:"MessageId"`
	InsertionTime   string `xml:"InsertionTime"`
	ExpirationTime  string `xml:"ExpirationTime"`
	PopReceipt      string `xml:"PopReceipt"`
	TimeNextVisible string `xml:"TimeNextVisible"`
	DequeueCount    *int   `xml:"DequeueCount"`
	MessageText     *string
}

type queueMessages struct {
	XMLName  xml.Name       `xml:"QueueMessagesList"`
	Messages []queueMessage `xml:"QueueMessage"`
}

func messageBody(text string) string {
	return "<QueueMessage><MessageText>" + text + "</MessageText></QueueMessage>"
}

// put puts a message raw and returns its answer.
func (e *queueEnv) put(t *testing.T, queue, query, text string) response {
	t.Helper()
	return e.do(t, http.MethodPost, "/"+queue+"/messages"+query, nil, messageBody(text))
}

// httpTime parses a time as the queue service writes them.
func httpTime(t *testing.T, v string) time.Time {
	t.Helper()
	tm, err := http.ParseTime(v)
	if err != nil {
		t.Fatalf("time %q: %v", v, err)
	}
	return tm
}

func TestQueue_PutMessage(t *testing.T) {
	cover(t, storage.Queue, "Put Message")
	env := newQueueEnv(t)
	ctx := context.Background()
	q := env.queue(t, "inbox")
	t.Run("success", func(t *testing.T) {
		r := env.put(t, "inbox", "?visibilitytimeout=0&messagettl=60", "hello")
		r.want(t, http.StatusCreated, "")
		var got queueMessages
		r.xmlDoc(t, &got)
		if len(got.Messages) != 1 {
			t.Fatalf("answer %s", r.body)
		}
		m := got.Messages[0]
		if m.MessageID == "" || m.PopReceipt == "" || m.TimeNextVisible == "" || m.MessageText != nil || m.DequeueCount != nil {
			t.Errorf("message %+v", m)
		}
		if d := httpTime(t, m.ExpirationTime).Sub(httpTime(t, m.InsertionTime)); d != time.Minute {
			t.Errorf("expires %v after insertion, want 1m", d)
		}
	})
	t.Run("messagettl -1", func(t *testing.T) {
		// Never expires; Azure writes the expiry as the end of year 9999.
		got, err := q.EnqueueMessage(ctx, "forever", &azqueue.EnqueueMessageOptions{TimeToLive: to.Ptr[int32](-1)})
		if err != nil {
			t.Fatal(err)
		}
		if exp := got.Messages[0].ExpirationTime; exp == nil || exp.Year() != 9999 {
			t.Errorf("expiry %v", exp)
		}
	})
	t.Run("messagettl any positive number", func(t *testing.T) {
		// Since 2017-07-29 the time-to-live may be any positive number:
		// beyond 32 bits, and so far that the expiry would pass year 9999,
		// where it stops.
		for _, ttl := range []string{"2147483647", "4294967296", "9223372036854775807"} {
			r := env.put(t, "inbox", "?messagettl="+ttl, "long-lived")
			r.want(t, http.StatusCreated, "")
			var got queueMessages
			r.xmlDoc(t, &got)
			exp := httpTime(t, got.Messages[0].ExpirationTime)
			if want := time.Now().Add(2147483647 * time.Second); ttl == "2147483647" && exp.Sub(want).Abs() > time.Minute {
				t.Errorf("messagettl=%s: expiry %v, want about %v", ttl, exp, want)
			}
			if ttl == "9223372036854775807" && exp.Year() != 9999 {
				t.Errorf("messagettl=%s: expiry %v, want the end of 9999", ttl, exp)
			}
		}
	})
	t.Run("messagettl before version 2017-07-29", func(t *testing.T) {
		// Older versions allow at most seven days and no -1.
		old := map[string]string{"x-ms-version": "2017-04-17"}
		env.do(t, http.MethodPost, "/inbox/messages?messagettl=604800", old, messageBody("week")).want(t, http.StatusCreated, "")
		for _, ttl := range []string{"604801", "-1"} {
			env.do(t, http.MethodPost, "/inbox/messages?messagettl="+ttl, old, messageBody("x")).want(t, http.StatusBadRequest, "OutOfRangeQueryParameterValue")
		}
	})
	t.Run("OutOfRangeQueryParameterValue", func(t *testing.T) {
		for _, query := range []string{"?messagettl=0", "?messagettl=-2", "?visibilitytimeout=604801", "?visibilitytimeout=-1"} {
			env.put(t, "inbox", query, "x").want(t, http.StatusBadRequest, "OutOfRangeQueryParameterValue")
		}
	})
	t.Run("InvalidQueryParameterValue", func(t *testing.T) {
		env.put(t, "inbox", "?messagettl=soon", "x").want(t, http.StatusBadRequest, "InvalidQueryParameterValue")
		// The visibility timeout must end before the message expires.
		env.put(t, "inbox", "?messagettl=10&visibilitytimeout=20", "x").want(t, http.StatusBadRequest, "InvalidQueryParameterValue")
	})
	t.Run("InvalidXmlDocument", func(t *testing.T) {
		env.do(t, http.MethodPost, "/inbox/messages", nil, "<QueueMessage><MessageText>x").want(t, http.StatusBadRequest, "InvalidXmlDocument")
		env.do(t, http.MethodPost, "/inbox/messages", nil, "<QueueMessage></QueueMessage>").want(t, http.StatusBadRequest, "InvalidXmlDocument")
	})
	t.Run("RequestBodyTooLarge", func(t *testing.T) {
		// A message over 64 KiB. The reference's error table also lists
		// 400 MessageTooLarge; the service answers this with 413
		// RequestBodyTooLarge, the answer Azure's SDK tests expect.
		_, err := q.EnqueueMessage(ctx, strings.Repeat("x", 64<<10+1), nil)
		wantErr(t, err, http.StatusRequestEntityTooLarge, "RequestBodyTooLarge")
		if _, err := q.EnqueueMessage(ctx, strings.Repeat("x", 64<<10), nil); err != nil {
			t.Errorf("a 64 KiB message: %v", err)
		}
	})
	t.Run("QueueNotFound", func(t *testing.T) {
		_, err := env.svc.NewQueueClient("absent").EnqueueMessage(ctx, "x", nil)
		wantErr(t, err, http.StatusNotFound, "QueueNotFound")
	})
}

func TestQueue_GetMessages(t *testing.T) {
	cover(t, storage.Queue, "Get Messages")
	env := newQueueEnv(t)
	ctx := context.Background()
	q := env.queue(t, "work")
	for _, text := range []string{"one", "two", "three"} {
		if _, err := q.EnqueueMessage(ctx, text, nil); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("success", func(t *testing.T) {
		r := env.do(t, http.MethodGet, "/work/messages?numofmessages=2&visibilitytimeout=60", nil, "")
		r.want(t, http.StatusOK, "")
		var got queueMessages
		r.xmlDoc(t, &got)
		if len(got.Messages) != 2 {
			t.Fatalf("answer %s", r.body)
		}
		for i, m := range got.Messages {
			if m.PopReceipt == "" || m.DequeueCount == nil || *m.DequeueCount != 1 || m.MessageText == nil || *m.MessageText != []string{"one", "two"}[i] {
				t.Errorf("message %d: %+v", i, m)
			}
			if d := httpTime(t, m.TimeNextVisible).Sub(time.Now()); d < 50*time.Second || d > 70*time.Second {
				t.Errorf("message %d visible again in %v, want about 60s", i, d)
			}
		}
		// The messages handed out are invisible; the third is next.
		next, err := q.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: to.Ptr[int32](32)})
		if err != nil {
			t.Fatal(err)
		}
		if len(next.Messages) != 1 || *next.Messages[0].MessageText != "three" {
			t.Errorf("after two were taken: %+v", next.Messages)
		}
	})
	t.Run("empty queue", func(t *testing.T) {
		r := env.do(t, http.MethodGet, "/work/messages", nil, "")
		r.want(t, http.StatusOK, "")
		var got queueMessages
		r.xmlDoc(t, &got)
		if len(got.Messages) != 0 {
			t.Errorf("answer %s", r.body)
		}
	})
	t.Run("OutOfRangeQueryParameterValue", func(t *testing.T) {
		for _, query := range []string{"numofmessages=0", "numofmessages=33", "visibilitytimeout=0", "visibilitytimeout=604801"} {
			env.do(t, http.MethodGet, "/work/messages?"+query, nil, "").want(t, http.StatusBadRequest, "OutOfRangeQueryParameterValue")
		}
	})
	t.Run("QueueNotFound", func(t *testing.T) {
		_, err := env.svc.NewQueueClient("absent").DequeueMessage(ctx, nil)
		wantErr(t, err, http.StatusNotFound, "QueueNotFound")
	})
}

func TestQueue_PeekMessages(t *testing.T) {
	cover(t, storage.Queue, "Peek Messages")
	env := newQueueEnv(t)
	ctx := context.Background()
	q := env.queue(t, "shelf")
	for _, text := range []string{"one", "two"} {
		if _, err := q.EnqueueMessage(ctx, text, nil); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("success", func(t *testing.T) {
		for range 2 { // peeking changes nothing
			r := env.do(t, http.MethodGet, "/shelf/messages?peekonly=true&numofmessages=32", nil, "")
			r.want(t, http.StatusOK, "")
			var got queueMessages
			r.xmlDoc(t, &got)
			if len(got.Messages) != 2 {
				t.Fatalf("answer %s", r.body)
			}
			for _, m := range got.Messages {
				// No pop receipt or next visible time: a peek takes nothing.
				if m.PopReceipt != "" || m.TimeNextVisible != "" || m.DequeueCount == nil || *m.DequeueCount != 0 || m.MessageText == nil {
					t.Errorf("message %+v", m)
				}
			}
		}
	})
	t.Run("OutOfRangeQueryParameterValue", func(t *testing.T) {
		env.do(t, http.MethodGet, "/shelf/messages?peekonly=true&numofmessages=33", nil, "").want(t, http.StatusBadRequest, "OutOfRangeQueryParameterValue")
	})
	t.Run("QueueNotFound", func(t *testing.T) {
		_, err := env.svc.NewQueueClient("absent").PeekMessages(ctx, nil)
		wantErr(t, err, http.StatusNotFound, "QueueNotFound")
	})
}

// take puts a message and gets it, returning its id and pop receipt.
func (e *queueEnv) take(t *testing.T, q *azqueue.QueueClient, text string) (id, receipt string) {
	t.Helper()
	ctx := context.Background()
	if _, err := q.EnqueueMessage(ctx, text, nil); err != nil {
		t.Fatal(err)
	}
	got, err := q.DequeueMessage(ctx, nil)
	if err != nil || len(got.Messages) != 1 {
		t.Fatalf("get %s: %+v, %v", text, got.Messages, err)
	}
	return *got.Messages[0].MessageID, *got.Messages[0].PopReceipt
}

func TestQueue_DeleteMessage(t *testing.T) {
	cover(t, storage.Queue, "Delete Message")
	env := newQueueEnv(t)
	ctx := context.Background()
	q := env.queue(t, "done")
	id, receipt := env.take(t, q, "finished")
	t.Run("PopReceiptMismatch", func(t *testing.T) {
		env.do(t, http.MethodDelete, "/done/messages/"+id+"?popreceipt=stale", nil, "").want(t, http.StatusBadRequest, "PopReceiptMismatch")
	})
	t.Run("MissingRequiredQueryParameter", func(t *testing.T) {
		env.do(t, http.MethodDelete, "/done/messages/"+id, nil, "").want(t, http.StatusBadRequest, "MissingRequiredQueryParameter")
	})
	t.Run("success", func(t *testing.T) {
		r := env.do(t, http.MethodDelete, "/done/messages/"+id+"?popreceipt="+url.QueryEscape(receipt), nil, "")
		r.want(t, http.StatusNoContent, "")
		if len(r.body) != 0 {
			t.Errorf("body %q", r.body)
		}
	})
	t.Run("MessageNotFound", func(t *testing.T) {
		_, err := q.DeleteMessage(ctx, id, receipt, nil)
		wantErr(t, err, http.StatusNotFound, "MessageNotFound")
	})
	t.Run("QueueNotFound", func(t *testing.T) {
		_, err := env.svc.NewQueueClient("absent").DeleteMessage(ctx, id, receipt, nil)
		wantErr(t, err, http.StatusNotFound, "QueueNotFound")
	})
}

func TestQueue_ClearMessages(t *testing.T) {
	cover(t, storage.Queue, "Clear Messages")
	env := newQueueEnv(t)
	ctx := context.Background()
	q := env.queue(t, "swept")
	for range 3 {
		if _, err := q.EnqueueMessage(ctx, "m", nil); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("success", func(t *testing.T) {
		env.do(t, http.MethodDelete, "/swept/messages", nil, "").want(t, http.StatusNoContent, "")
		got, err := q.GetProperties(ctx, nil)
		if err != nil || *got.ApproximateMessagesCount != 0 {
			t.Errorf("after clearing: %v, %v", got.ApproximateMessagesCount, err)
		}
		peek, err := q.PeekMessages(ctx, nil)
		if err != nil || len(peek.Messages) != 0 {
			t.Errorf("after clearing: %+v, %v", peek.Messages, err)
		}
	})
	t.Run("QueueNotFound", func(t *testing.T) {
		_, err := env.svc.NewQueueClient("absent").ClearMessages(ctx, nil)
		wantErr(t, err, http.StatusNotFound, "QueueNotFound")
	})
}

func TestQueue_UpdateMessage(t *testing.T) {
	cover(t, storage.Queue, "Update Message")
	env := newQueueEnv(t)
	ctx := context.Background()
	q := env.queue(t, "drafts")
	id, receipt := env.take(t, q, "draft")
	t.Run("success", func(t *testing.T) {
		r := env.do(t, http.MethodPut, "/drafts/messages/"+id+"?visibilitytimeout=0&popreceipt="+url.QueryEscape(receipt), nil, messageBody("final"))
		r.want(t, http.StatusNoContent, "")
		next := r.header.Get("x-ms-popreceipt")
		if next == "" || next == receipt || r.header.Get("x-ms-time-next-visible") == "" {
			t.Errorf("headers %v", r.header)
		}
		got, err := q.PeekMessages(ctx, nil)
		if err != nil || len(got.Messages) != 1 || *got.Messages[0].MessageText != "final" {
			t.Errorf("after update: %+v, %v", got.Messages, err)
		}
		receipt = next
	})
	t.Run("visibility alone", func(t *testing.T) {
		got, err := q.UpdateMessage(ctx, id, receipt, "", &azqueue.UpdateMessageOptions{VisibilityTimeout: to.Ptr[int32](60)})
		if err != nil {
			t.Fatal(err)
		}
		receipt = *got.PopReceipt
		if peek, err := q.PeekMessages(ctx, nil); err != nil || len(peek.Messages) != 0 {
			t.Errorf("message still visible: %+v, %v", peek.Messages, err)
		}
	})
	t.Run("PopReceiptMismatch", func(t *testing.T) {
		env.do(t, http.MethodPut, "/drafts/messages/"+id+"?visibilitytimeout=0&popreceipt=stale", nil, "").want(t, http.StatusBadRequest, "PopReceiptMismatch")
	})
	t.Run("MissingRequiredQueryParameter", func(t *testing.T) {
		env.do(t, http.MethodPut, "/drafts/messages/"+id+"?popreceipt="+url.QueryEscape(receipt), nil, "").want(t, http.StatusBadRequest, "MissingRequiredQueryParameter")
		env.do(t, http.MethodPut, "/drafts/messages/"+id+"?visibilitytimeout=0", nil, "").want(t, http.StatusBadRequest, "MissingRequiredQueryParameter")
	})
	t.Run("OutOfRangeQueryParameterValue", func(t *testing.T) {
		env.do(t, http.MethodPut, "/drafts/messages/"+id+"?visibilitytimeout=604801&popreceipt="+url.QueryEscape(receipt), nil, "").
			want(t, http.StatusBadRequest, "OutOfRangeQueryParameterValue")
	})
	t.Run("MessageNotFound", func(t *testing.T) {
		_, err := q.UpdateMessage(ctx, "00000000-0000-0000-0000-000000000000", receipt, "x", nil)
		wantErr(t, err, http.StatusNotFound, "MessageNotFound")
	})
	t.Run("QueueNotFound", func(t *testing.T) {
		_, err := env.svc.NewQueueClient("absent").UpdateMessage(ctx, id, receipt, "x", nil)
		wantErr(t, err, http.StatusNotFound, "QueueNotFound")
	})
}

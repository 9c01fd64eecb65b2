package daemon

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/weftcloud/weft/internal/storage"
)

// TestStorageAccounts runs `weft storage` with two accounts given in the
// emulator's form, the first with two keys, and uses both through the
// SDKs: each account sees its own queues and tables, the second key signs
// as well as the first, and the development account is not served.
func TestStorageAccounts(t *testing.T) {
	newKey := func() string {
		b := make([]byte, 64)
		_, _ = rand.Read(b)
		return base64.StdEncoding.EncodeToString(b)
	}
	alpha1, alpha2, beta1 := newKey(), newKey(), newKey()
	cfg := StorageConfig{
		Data: t.TempDir(), Host: "127.0.0.1",
		BlobPort: freePort(t), QueuePort: freePort(t), TablePort: freePort(t),
		Accounts: fmt.Sprintf("alpha:%s:%s;beta:%s", alpha1, alpha2, beta1),
		Logger:   quiet,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunStorage(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("RunStorage: %v", err)
		}
	})
	queueURL := fmt.Sprintf("http://127.0.0.1:%d", cfg.QueuePort)
	waitServing(t, queueURL, done)

	opts := func() policy.ClientOptions {
		return policy.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}, InsecureAllowCredentialWithHTTP: true}
	}
	queues := func(account, key string) *azqueue.ServiceClient {
		t.Helper()
		cred, err := azqueue.NewSharedKeyCredential(account, key)
		if err != nil {
			t.Fatal(err)
		}
		c, err := azqueue.NewServiceClientWithSharedKeyCredential(queueURL+"/"+account, cred, &azqueue.ClientOptions{ClientOptions: opts()})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tables := func(account, key string) *aztables.ServiceClient {
		t.Helper()
		cred, err := aztables.NewSharedKeyCredential(account, key)
		if err != nil {
			t.Fatal(err)
		}
		c, err := aztables.NewServiceClientWithSharedKey(fmt.Sprintf("http://127.0.0.1:%d/%s", cfg.TablePort, account), cred, &aztables.ClientOptions{ClientOptions: opts()})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, u := range []struct{ account, key, queue string }{
		{"alpha", alpha1, "alpha-one"}, {"alpha", alpha2, "alpha-two"}, {"beta", beta1, "beta-one"},
	} {
		if _, err := queues(u.account, u.key).CreateQueue(ctx, u.queue, nil); err != nil {
			t.Fatalf("%s: create queue %s: %v", u.account, u.queue, err)
		}
		if _, err := tables(u.account, u.key).CreateTable(ctx, strings.ReplaceAll(u.queue, "-", ""), nil); err != nil {
			t.Fatalf("%s: create table: %v", u.account, err)
		}
	}
	for account, want := range map[string]string{"alpha": "alpha-one,alpha-two", "beta": "beta-one"} {
		key := map[string]string{"alpha": alpha2, "beta": beta1}[account]
		page, err := queues(account, key).NewListQueuesPager(nil).NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, q := range page.Queues {
			names = append(names, *q.Name)
		}
		if got := strings.Join(names, ","); got != want {
			t.Errorf("%s's queues: %s, want %s", account, got, want)
		}
	}
	for _, u := range []struct{ account, key string }{
		{"beta", alpha1},                     // another account's key
		{storage.DevAccount, storage.DevKey}, // the development account, not listed
	} {
		_, err := queues(u.account, u.key).NewListQueuesPager(nil).NextPage(ctx)
		var re *azcore.ResponseError
		if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden || re.ErrorCode != "AuthenticationFailed" {
			t.Errorf("%s with a key it does not have: %v, want 403 AuthenticationFailed", u.account, err)
		}
	}
}

// TestStorageAccountsRefused: a bad list stops `weft storage` before it
// listens, with an error that names the entry.
func TestStorageAccountsRefused(t *testing.T) {
	err := RunStorage(context.Background(), StorageConfig{Data: t.TempDir(), Accounts: "alpha:" + storage.DevKey + ";Beta:" + storage.DevKey, Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), `entry 2 ("Beta")`) {
		t.Errorf("RunStorage with a bad account name: %v", err)
	}
}

// waitServing waits until the service at url answers with more than the
// 503 it gives while it opens, or fails the test when run ends first.
func waitServing(t *testing.T, url string, run <-chan error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				return
			}
		}
		select {
		case err := <-run:
			t.Fatalf("the storage service stopped: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not serving after 10s", url)
		}
	}
}

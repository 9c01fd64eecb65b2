package storage

import (
	"context"
	"encoding/base64"
	"errors"
)

// Accounts looks up an account's keys (both are valid signing keys).
type Accounts interface {
	// Keys returns the account's keys, or ErrNoAccount when it is unknown.
	Keys(ctx context.Context, account string) ([][]byte, error)
}

// ErrNoAccount is returned by Accounts for an unknown account.
var ErrNoAccount = errors.New("storage: no such account")

// The Azure storage emulator's documented development account, served so
// that UseDevelopmentStorage=true and tools made for the emulator work.
const (
	DevAccount = "devstoreaccount1"
	DevKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// StaticAccounts is a fixed map of account names to keys.
type StaticAccounts map[string][][]byte

var _ Accounts = StaticAccounts(nil)

// Keys implements Accounts.
func (a StaticAccounts) Keys(_ context.Context, account string) ([][]byte, error) {
	keys, ok := a[account]
	if !ok {
		return nil, ErrNoAccount
	}
	return keys, nil
}

// DevAccounts serves only the development account.
func DevAccounts() StaticAccounts {
	key, _ := base64.StdEncoding.DecodeString(DevKey)
	return StaticAccounts{DevAccount: {key}}
}

// MultiAccounts asks each Accounts in turn and answers with the first that
// knows the account; e.g. the development account plus configured ones.
type MultiAccounts []Accounts

var _ Accounts = MultiAccounts(nil)

// Keys implements Accounts.
func (m MultiAccounts) Keys(ctx context.Context, account string) ([][]byte, error) {
	for _, a := range m {
		keys, err := a.Keys(ctx, account)
		if errors.Is(err, ErrNoAccount) {
			continue
		}
		return keys, err
	}
	return nil, ErrNoAccount
}

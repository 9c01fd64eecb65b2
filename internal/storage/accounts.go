package storage

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
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

// ParseAccounts reads accounts and keys in the form the Azure storage
// emulator reads from AZURITE_ACCOUNTS: entries separated by ';', each an
// account name and one or two base64 keys separated by ':', as in
// "alpha:KEY1:KEY2;beta:KEY1". Names are 3 to 24 lowercase letters and
// digits, as Azure's are, and each appears once. The error names the bad
// entry by its position and account, never by its keys.
func ParseAccounts(s string) (StaticAccounts, error) {
	accounts := StaticAccounts{}
	for i, entry := range strings.Split(s, ";") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue // "a:k;" ends in an empty entry
		}
		fields := strings.Split(entry, ":")
		name := fields[0]
		if !ValidAccountName(name) {
			return nil, fmt.Errorf("storage: accounts: entry %d (%q): the name must be 3 to 24 lowercase letters and digits", i+1, name)
		}
		if _, dup := accounts[name]; dup {
			return nil, fmt.Errorf("storage: accounts: entry %d (%s): the account is listed twice", i+1, name)
		}
		if len(fields) < 2 || len(fields) > 3 {
			return nil, fmt.Errorf("storage: accounts: entry %d (%s): want NAME:KEY1 or NAME:KEY1:KEY2, got %d keys", i+1, name, len(fields)-1)
		}
		for k, f := range fields[1:] {
			key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(f))
			if err != nil || len(key) == 0 {
				return nil, fmt.Errorf("storage: accounts: entry %d (%s): key %d is not base64", i+1, name, k+1)
			}
			accounts[name] = append(accounts[name], key)
		}
	}
	if len(accounts) == 0 {
		return nil, errors.New("storage: accounts: none in the list (want NAME:KEY1[:KEY2];...)")
	}
	return accounts, nil
}

// ValidAccountName reports whether name is a storage account name: 3 to
// 24 lowercase letters and digits, as in Azure.
func ValidAccountName(name string) bool {
	if len(name) < 3 || len(name) > 24 {
		return false
	}
	for _, c := range name {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

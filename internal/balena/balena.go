// Package balena owns the project's view of the balena cloud: the Cloud
// interface the workers call (who am I, register a device under a UUID we
// chose, build its config.json, is it online), the error classes every
// implementation reports (ErrUnauthorized, ErrNotFound, ErrTransient,
// ErrConflict, ErrInvalid), device UUIDs, and the settings shared by the
// implementations (Options, RetryPolicy, the token file).
//
// Implementations live in sibling packages: api (native HTTPS), cli (the
// balena CLI on PATH) and fake (an in-memory balena API for tests and demos);
// package cloud picks one by name.
package balena

import (
	"context"
	"crypto/rand"
	"encoding/hex"
)

// Cloud is what the workers need from balena. Every call honours ctx.
type Cloud interface {
	// Whoami checks the credentials with one cheap call and tells who they
	// belong to. A rejected token is ErrUnauthorized.
	Whoami(ctx context.Context) (User, error)
	// Register creates a device with the given UUID in app (an "org/name"
	// slug, a numeric application id or a bare application name). It is
	// idempotent: when the UUID already exists the existing device is
	// returned, so a retried unit never creates a second device.
	Register(ctx context.Context, app, uuid string) (Device, error)
	// DeviceConfig builds the config.json for an already registered device
	// running balenaOS version: the application's configuration plus the
	// device's own key, id, UUID and registration time. The bytes hold the
	// device's API key: never log them.
	DeviceConfig(ctx context.Context, app, uuid, version string) ([]byte, error)
	// IsOnline says whether the device with this UUID is online. A device
	// balena does not know (yet) is reported as not online, without error.
	IsOnline(ctx context.Context, uuid string) (bool, error)
}

// User is the account behind the credentials.
type User struct {
	ID       int64
	Username string
	Email    string
}

// Device is a registered device.
type Device struct {
	ID   int64
	UUID string
	// Existing is true when Register found the UUID already registered and
	// returned that device instead of creating one.
	Existing bool
}

// UUIDLen is the length of the device UUIDs this project creates.
const UUIDLen = 32

// NewUUID returns a fresh device UUID: 32 lowercase hex digits from
// crypto/rand, the form balena itself generates.
func NewUUID() string {
	var b [UUIDLen / 2]byte
	// crypto/rand.Read never fails on supported platforms (it aborts the
	// program instead), so its error needs no handling.
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ValidUUID reports whether s is a device UUID as NewUUID makes them.
func ValidUUID(s string) bool {
	if len(s) != UUIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

package api

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
)

// appSelect is the query of the SDK's application lookup (docs/balena.md).
const appSelect = "$select=id,slug&$expand=is_for__device_type($select=slug)"

type appInfo struct {
	id         int64
	slug       string
	deviceType string
}

// Whoami asks GET /actor/v1/whoami who the token belongs to.
func (c *Client) Whoami(ctx context.Context) (balena.User, error) {
	var who struct {
		ID          int64  `json:"id"`
		ActorType   string `json:"actorType"`
		ActorTypeID int64  `json:"actorTypeId"`
		Username    string `json:"username"`
		Email       string `json:"email"`
	}
	err := c.call(ctx, request{op: "check credentials", method: "GET", path: "/actor/v1/whoami",
		want: 200, out: &who})
	if err != nil {
		return balena.User{}, err
	}
	u := balena.User{ID: who.ID, Username: who.Username, Email: who.Email}
	if who.ActorType == "user" && who.ActorTypeID != 0 {
		u.ID = who.ActorTypeID
	}
	if u.ID == 0 {
		return balena.User{}, &balena.Error{Op: "check credentials", Class: balena.ErrInvalid,
			Msg: "whoami reply has no id"}
	}
	c.mu.Lock()
	c.user = &u
	c.mu.Unlock()
	return u, nil
}

// currentUser is the user Whoami found, asking only the first time.
func (c *Client) currentUser(ctx context.Context) (balena.User, error) {
	c.userMu.Lock()
	defer c.userMu.Unlock()
	c.mu.Lock()
	u := c.user
	c.mu.Unlock()
	if u != nil {
		return *u, nil
	}
	return c.Whoami(ctx)
}

// app resolves an application reference: "org/name" slug, numeric id or
// bare name. Results are kept for the client's lifetime: one lookup per
// fleet and worker.
func (c *Client) app(ctx context.Context, ref string) (appInfo, error) {
	ref = strings.TrimSpace(ref)
	op := fmt.Sprintf("look up application %q", ref)
	if err := balena.CheckSetting("look up application", ref, balena.SettingApp); err != nil {
		return appInfo{}, err
	}
	c.appMu.Lock()
	defer c.appMu.Unlock()
	c.mu.Lock()
	a, ok := c.apps[ref]
	c.mu.Unlock()
	if ok {
		return a, nil
	}
	req := request{op: op, method: "GET", path: "/v7/application", want: 200}
	switch {
	case isDigits(ref):
		req.path += "(" + ref + ")"
		req.query = appSelect
	case strings.Contains(ref, "/"):
		req.query = appSelect + "&" + filterEq("slug", strings.ToLower(ref))
	default:
		req.query = appSelect + "&" + filterEq("app_name", ref)
	}
	var reply struct {
		D []struct {
			ID         int64  `json:"id"`
			Slug       string `json:"slug"`
			DeviceType []struct {
				Slug string `json:"slug"`
			} `json:"is_for__device_type"`
		} `json:"d"`
	}
	req.out = &reply
	if err := c.call(ctx, req); err != nil {
		return appInfo{}, err
	}
	switch {
	case len(reply.D) == 0:
		// balena answers a rejected token here with no applications, not
		// 401 (public fleets are readable by anyone): ask who we are.
		if _, err := c.Whoami(ctx); err != nil {
			return appInfo{}, err
		}
		return appInfo{}, &balena.Error{Op: op, Class: balena.ErrNotFound,
			Msg: "no such application visible to this token"}
	case len(reply.D) > 1:
		return appInfo{}, &balena.Error{Op: op, Class: balena.ErrConflict,
			Msg: fmt.Sprintf("%d applications have this name; give it as org/name", len(reply.D))}
	case len(reply.D[0].DeviceType) == 0 || reply.D[0].ID == 0:
		return appInfo{}, &balena.Error{Op: op, Class: balena.ErrInvalid,
			Msg: "reply lacks the application id or device type"}
	}
	a = appInfo{id: reply.D[0].ID, slug: reply.D[0].Slug, deviceType: reply.D[0].DeviceType[0].Slug}
	c.mu.Lock()
	c.apps[ref] = a
	c.mu.Unlock()
	return a, nil
}

func isDigits(s string) bool {
	_, err := strconv.ParseUint(s, 10, 63)
	return err == nil
}

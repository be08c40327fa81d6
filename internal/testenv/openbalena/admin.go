package openbalena

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// startLimit bounds the server's start-up (a minute and a half is usual on
// a busy 2-core machine).
const startLimit = 6 * time.Minute

// waitReady waits for /ping and for the device types the contracts define.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startLimit)
	defer cancel()
	api := s.procs[len(s.procs)-1]
	for {
		var reply struct{ D []struct{ Slug string } }
		err := s.call(ctx, "", "GET", "/v7/device_type?$select=slug&$filter=slug%20eq%20'raspberrypi4-64'", nil, &reply)
		if err == nil && len(reply.D) == 1 {
			return nil
		}
		if exited(api) {
			return fmt.Errorf("the server exited during start-up (last answer: %v)", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready after %v (last answer: %v)", startLimit, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// login logs the superuser in: a fresh session token (making API keys
// takes one only minutes old).
func (s *Server) login(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", s.URL+"/login_",
		strings.NewReader(fmt.Sprintf(`{"username":%q,"password":%q}`, adminEmail, adminPassword)))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	jwt, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("admin login: HTTP %d: %s", resp.StatusCode, jwt)
	}
	return strings.TrimSpace(string(jwt)), nil
}

// adminKey logs the superuser in and makes an API key for it.
func (s *Server) adminKey(ctx context.Context) (jwtToken, key string, err error) {
	if jwtToken, err = s.login(ctx); err != nil {
		return "", "", err
	}
	err = s.call(ctx, jwtToken, "POST", "/api-key/user/full",
		map[string]any{"name": "tests", "description": "balena-migrate tests"}, &key)
	if err != nil {
		return "", "", fmt.Errorf("admin API key: %w", err)
	}
	return jwtToken, key, nil
}

// call makes one request with token as bearer (none when empty), the JSON
// body, and decodes a 2xx reply into out.
func (s *Server) call(ctx context.Context, token, method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, r)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(data)))
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}

// Admin makes a request as the superuser: the JSON body, a 2xx reply
// decoded into out.
func (s *Server) Admin(ctx context.Context, method, path string, body, out any) error {
	return s.call(ctx, s.AdminKey, method, path, body, out)
}

// AdminSession is Admin with the superuser's session token, for what API
// keys may not do (managing API keys).
func (s *Server) AdminSession(ctx context.Context, method, path string, body, out any) error {
	return s.call(ctx, s.AdminJWT, method, path, body, out)
}

// Org is the superuser's organisation's handle; open-balena has no
// sign-up, so every fleet of the tests belongs to it.
const Org = "admin"

// NewFleet creates a fleet (application) of deviceType in the admin's
// organisation and returns its id and slug ("admin/<name>").
func (s *Server) NewFleet(ctx context.Context, name, deviceType string) (int64, string, error) {
	dt, err := s.deviceTypeID(ctx, deviceType)
	if err != nil {
		return 0, "", err
	}
	var app struct {
		ID   int64  `json:"id"`
		Slug string `json:"slug"`
	}
	err = s.Admin(ctx, "POST", "/v7/application",
		map[string]any{"app_name": name, "organization": 1, "is_for__device_type": dt}, &app)
	if err != nil {
		return 0, "", err
	}
	return app.ID, app.Slug, nil
}

func (s *Server) deviceTypeID(ctx context.Context, slug string) (int64, error) {
	var reply struct {
		D []struct {
			ID int64 `json:"id"`
		} `json:"d"`
	}
	q := "/v7/device_type?$select=id&$filter=slug%20eq%20" + url.PathEscape("'"+slug+"'")
	if err := s.Admin(ctx, "GET", q, nil, &reply); err != nil {
		return 0, err
	}
	if len(reply.D) != 1 {
		return 0, fmt.Errorf("open-balena-api knows no device type %q", slug)
	}
	return reply.D[0].ID, nil
}

// NewUserKey makes another API key of the superuser, with its id (to
// revoke it with RevokeKey).
func (s *Server) NewUserKey(ctx context.Context, name string) (id int64, key string, err error) {
	jwt, err := s.login(ctx)
	if err != nil {
		return 0, "", err
	}
	if err := s.call(ctx, jwt, "POST", "/api-key/user/full", map[string]any{"name": name}, &key); err != nil {
		return 0, "", err
	}
	var reply struct {
		D []struct {
			ID int64 `json:"id"`
		} `json:"d"`
	}
	q := "/v7/api_key?$select=id&$filter=name%20eq%20" + url.PathEscape("'"+name+"'")
	if err := s.call(ctx, s.AdminJWT, "GET", q, nil, &reply); err != nil {
		return 0, "", err
	}
	if len(reply.D) != 1 {
		return 0, "", fmt.Errorf("api key %q: %d found", name, len(reply.D))
	}
	return reply.D[0].ID, key, nil
}

// RevokeKey deletes an API key, as an operator does in the dashboard.
func (s *Server) RevokeKey(ctx context.Context, id int64) error {
	return s.call(ctx, s.AdminJWT, "DELETE", fmt.Sprintf("/v7/api_key(%d)", id), nil, nil)
}

// Device is what the API holds for a device.
type Device struct {
	ID                   int64             `json:"id"`
	UUID                 string            `json:"uuid"`
	Name                 string            `json:"device_name"`
	IsOnline             bool              `json:"is_online"`
	HeartbeatState       string            `json:"api_heartbeat_state"`
	OSVersion            string            `json:"os_version"`
	SupervisorVersion    string            `json:"supervisor_version"`
	Status               string            `json:"status"`
	ProvisioningState    string            `json:"provisioning_state"`
	ProvisioningProgress *int              `json:"provisioning_progress"`
	DeviceType           string            `json:"-"`
	Tags                 map[string]string `json:"-"`
}

// Device looks a device up by UUID; found is false when there is none.
func (s *Server) Device(ctx context.Context, uuid string) (d Device, found bool, err error) {
	var reply struct {
		D []struct {
			Device
			Type []struct {
				Slug string `json:"slug"`
			} `json:"is_of__device_type"`
			Tags []struct {
				Key   string `json:"tag_key"`
				Value string `json:"value"`
			} `json:"device_tag"`
		} `json:"d"`
	}
	q := "/v7/device?$select=id,uuid,device_name,is_online,api_heartbeat_state,os_version,supervisor_version," +
		"status,provisioning_state,provisioning_progress" +
		"&$expand=is_of__device_type($select=slug),device_tag($select=tag_key,value)" +
		"&$filter=uuid%20eq%20" + url.PathEscape("'"+uuid+"'")
	if err := s.Admin(ctx, "GET", q, nil, &reply); err != nil || len(reply.D) == 0 {
		return Device{}, false, err
	}
	r := reply.D[0]
	d = r.Device
	if len(r.Type) == 1 {
		d.DeviceType = r.Type[0].Slug
	}
	d.Tags = map[string]string{}
	for _, t := range r.Tags {
		d.Tags[t.Key] = t.Value
	}
	return d, true, nil
}

// ProvisioningKeyExpiries lists the expiry of every API key of the fleet
// (provisioning keys; zero: never expires), read from the database: the
// API shows application keys to no user.
func (s *Server) ProvisioningKeyExpiries(ctx context.Context, fleet string) ([]time.Time, error) {
	q := `SELECT coalesce(extract(epoch FROM k."expiry date")::bigint, 0) FROM "api key" k ` +
		`JOIN application a ON a.actor = k."is of-actor" WHERE a.slug = '` + strings.ReplaceAll(fleet, "'", "''") + `'`
	cmd := exec.CommandContext(ctx, "psql", "-qtA", "-h", "127.0.0.1", "-p", strconv.Itoa(s.PGPort),
		"-U", "postgres", "-d", "resin", "-c", q)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("psql on port %d: %w: %s", s.PGPort, err, stderr.String())
	}
	var exp []time.Time
	for _, f := range strings.Fields(string(out)) {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("psql answered %q", out)
		}
		var t time.Time
		if n != 0 {
			t = time.Unix(n, 0)
		}
		exp = append(exp, t)
	}
	return exp, nil
}

// Requests counts the requests the API logged, by route ("GET
// /v7/device", "PATCH /device/v3/state"; query strings dropped, numbers
// and UUIDs in paths replaced by <id>). The log is the instance's own
// (Options.Log unset).
func (s *Server) Requests() (map[string]int, error) {
	if s.logf == nil {
		return nil, errors.New("open-balena-api: the request log is not kept here (Options.Log was set)")
	}
	data, err := os.ReadFile(s.logf.Name())
	if err != nil {
		return nil, err
	}
	return countRoutes(string(data)), nil
}

// countRoutes reads the API's request lines,
//
//	<address> <request id> <actor> <METHOD> <path> <status> <ms> ms -
//
// where the actor is "-" for an anonymous request, else the actor that
// made it (a/2: the user's key, a device's key).
func countRoutes(log string) map[string]int {
	out := map[string]int{}
	for _, line := range strings.Split(log, "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || !isMethod(f[3]) {
			continue
		}
		path, _, _ := strings.Cut(f[4], "?")
		out[f[3]+" "+idRE.ReplaceAllString(path, "<id>")]++
	}
	return out
}

var idRE = regexp.MustCompile(`\b[0-9a-f]{32}\b|\b[0-9]+\b`)

func isMethod(s string) bool {
	switch s {
	case "GET", "POST", "PATCH", "PUT", "DELETE":
		return true
	}
	return false
}

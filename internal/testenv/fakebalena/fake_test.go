package fakebalena

// These tests pin the fake to the request and response shapes of docs/balena.md
// with hand-written requests, independently of the api adapter.

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

const userToken = "user-token-123"

// clock is a settable time source for one test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type reply struct {
	status int
	header http.Header
	body   string
}

func call(t *testing.T, method, url, token, body string) reply {
	t.Helper()
	ctype := "application/json"
	if rest, ok := strings.CutPrefix(body, "text:"); ok { // sent as plain text
		body, ctype = rest, "text/plain"
	}
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: strings.TrimSpace(string(b))}
}

// seeded starts a fake with one user and two applications.
func seeded(t *testing.T, cfg Config) (*Server, App, App) {
	t.Helper()
	s := Start(cfg)
	t.Cleanup(s.Close)
	s.AddUser("gh_ops", userToken)
	a := s.AddApp("Ops/Fleet-One", "raspberrypi3")
	b := s.AddApp("ops/it's", "intel-nuc")
	return s, a, b
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWhoamiAuth(t *testing.T) {
	s, app, _ := seeded(t, Config{})
	key := provisioningKey(t, s, app.ID)
	tests := []struct {
		name   string
		token  string
		status int
	}{
		{"user token", userToken, 200},
		{"no token", "", 401},
		{"unknown token", "nope", 401},
		{"provisioning key", key, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := call(t, "GET", s.URL()+"/actor/v1/whoami", tt.token, "")
			if r.status != tt.status {
				t.Fatalf("status %d, want %d (%s)", r.status, tt.status, r.body)
			}
			if tt.status != 200 {
				return
			}
			var who struct {
				ID        int64  `json:"id"`
				ActorType string `json:"actorType"`
				Username  string `json:"username"`
			}
			if err := json.Unmarshal([]byte(r.body), &who); err != nil || who.ID == 0 ||
				who.ActorType != "user" || who.Username != "gh_ops" {
				t.Fatalf("whoami body %s (%v)", r.body, err)
			}
		})
	}
}

func TestApplicationQueries(t *testing.T) {
	s, a, b := seeded(t, Config{})
	sel := "?$select=id,slug&$expand=is_for__device_type($select=slug)"
	rowA := `{"d":[{"id":` + jsonOf(t, a.ID) + `,"is_for__device_type":[{"slug":"raspberrypi3"}],"slug":"ops/fleet-one"}]}`
	rowB := `{"d":[{"id":` + jsonOf(t, b.ID) + `,"is_for__device_type":[{"slug":"intel-nuc"}],"slug":"ops/it's"}]}`
	tests := []struct {
		name, path, token string
		status            int
		body              string
	}{
		{"slug", "/v7/application" + sel + "&$filter=slug%20eq%20'ops%2Ffleet-one'", userToken, 200, rowA},
		{"slug with plus for space", "/v7/application" + sel + "&$filter=slug+eq+'ops%2Ffleet-one'", userToken, 200, rowA},
		{"numeric id", "/v7/application(" + jsonOf(t, a.ID) + ")" + sel, userToken, 200, rowA},
		{"bare name, quote doubled", "/v7/application" + sel + "&$filter=app_name%20eq%20'it''s'", userToken, 200, rowB},
		{"unknown slug", "/v7/application" + sel + "&$filter=slug%20eq%20'ops%2Fnone'", userToken, 200, `{"d":[]}`},
		{"unknown id", "/v7/application(99999)" + sel, userToken, 404, ""},
		{"unknown field", "/v7/application?$select=id,secret", userToken, 400, ""},
		{"bad filter", "/v7/application" + sel + "&$filter=slug%20ne%20'x'", userToken, 400, ""},
		// As on the real server: fleets can be public, so no token sees none.
		{"no token", "/v7/application" + sel, "", 200, `{"d":[]}`},
		{"unknown resource", "/v7/image", userToken, 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := call(t, "GET", s.URL()+tt.path, tt.token, "")
			if r.status != tt.status {
				t.Fatalf("status %d, want %d (%s)", r.status, tt.status, r.body)
			}
			if tt.body != "" && r.body != tt.body {
				t.Fatalf("body\n %s\nwant\n %s", r.body, tt.body)
			}
		})
	}
}

func provisioningKey(t *testing.T, s *Server, appID int64) string {
	t.Helper()
	body := `{"actorType":"application","actorTypeId":` + jsonOf(t, appID) +
		`,"roles":["provisioning-api-key"],"expiryDate":"` +
		time.Now().Add(10*time.Minute).UTC().Format(time.RFC3339) + `","description":"test"}`
	r := call(t, "POST", s.URL()+"/api-key/v2/", userToken, body)
	var key string
	if r.status != 200 || json.Unmarshal([]byte(r.body), &key) != nil || key == "" {
		t.Fatalf("provisioning key: %d %s", r.status, r.body)
	}
	return key
}

func TestProvisioningKeyRequests(t *testing.T) {
	s, a, _ := seeded(t, Config{})
	future := time.Now().Add(10 * time.Minute).UTC().Format(time.RFC3339)
	past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	tests := []struct {
		name, path, token, body string
		status                  int
	}{
		{"valid", "/api-key/v2/", userToken, `{"actorType":"application","actorTypeId":` + jsonOf(t, a.ID) + `,"roles":["provisioning-api-key"],"expiryDate":"` + future + `","description":"x"}`, 200},
		{"no token", "/api-key/v2/", "", `{"actorType":"application","actorTypeId":` + jsonOf(t, a.ID) + `,"roles":["provisioning-api-key"]}`, 401},
		{"expiry in the past", "/api-key/v2/", userToken, `{"actorType":"application","actorTypeId":` + jsonOf(t, a.ID) + `,"roles":["provisioning-api-key"],"expiryDate":"` + past + `"}`, 400},
		{"unknown app", "/api-key/v2/", userToken, `{"actorType":"application","actorTypeId":1,"roles":["provisioning-api-key"]}`, 404},
		{"wrong role", "/api-key/v2/", userToken, `{"actorType":"application","actorTypeId":` + jsonOf(t, a.ID) + `,"roles":["named-user-api-key"]}`, 400},
		{"unknown field", "/api-key/v2/", userToken, `{"actorType":"application","actorTypeId":` + jsonOf(t, a.ID) + `,"roles":["provisioning-api-key"],"x":1}`, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := call(t, "POST", s.URL()+tt.path, tt.token, tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d (%s)", r.status, tt.status, r.body)
			}
		})
	}
}

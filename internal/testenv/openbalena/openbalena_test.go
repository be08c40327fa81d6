package openbalena

import (
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/testenv"
)

// The server itself is started by the tests that need it (the balena
// contract suite, the e2e run): one start costs a minute or more. Here:
// the tiny S3 answers the three calls the API makes as S3 does.
func TestS3ServesDeviceTypeJSON(t *testing.T) {
	testenv.NeedFile(t, CacheDir()+"/READY", "scripts/test-setup.d/30-open-balena-api builds it")
	s := &Server{}
	url, err := s.startS3()
	if err != nil {
		t.Fatal(err)
	}
	defer s.s3.Close()
	get := func(method, path string) (int, string) {
		req, _ := http.NewRequest(method, url+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("GET", "/balena-img/?list-type=2&prefix=images/raspberrypi4-64/&delimiter=/")
	var list struct {
		CommonPrefixes []struct{ Prefix string }
	}
	if err := xml.Unmarshal([]byte(body), &list); code != 200 || err != nil || len(list.CommonPrefixes) != 1 ||
		list.CommonPrefixes[0].Prefix != "images/raspberrypi4-64/"+s3Version+"/" {
		t.Fatalf("list: %d %v %s", code, err, body)
	}
	code, body = get("GET", "/balena-img/images/raspberrypi4-64/"+s3Version+"/device-type.json")
	var dt struct {
		Slug, Arch string
		Options    []any
	}
	if err := json.Unmarshal([]byte(body), &dt); code != 200 || err != nil || dt.Slug != "raspberrypi4-64" ||
		dt.Arch != "aarch64" || len(dt.Options) == 0 {
		t.Fatalf("device-type.json: %d %v %+v", code, err, dt)
	}
	if code, _ := get("HEAD", "/balena-img/images/raspberrypi4-64/"+s3Version+"/IGNORE"); code != 404 {
		t.Fatalf("HEAD of a missing key: %d", code)
	}
	if code, body := get("GET", "/other-bucket/x"); code != 404 || !strings.Contains(body, "NoSuchBucket") {
		t.Fatalf("other bucket: %d %s", code, body)
	}
}

func TestTokenKeyID(t *testing.T) {
	_, pub, kid, err := tokenKeys()
	if err != nil || !strings.Contains(string(pub), "PUBLIC KEY") || len(kid) != 59 || strings.Count(kid, ":") != 11 {
		t.Fatalf("kid %q (%v)", kid, err)
	}
}

// The request log as open-balena-api v49 writes it: anonymous requests
// and those of a user's or a device's key alike, other lines left out.
func TestCountRoutes(t *testing.T) {
	log := `::ffff:127.0.0.1 86099723005dc3716c508bd4fac6832d - GET /v7/device_type?$select=slug 200 5.007ms -
::ffff:127.0.0.1 ac32c28e2a30ab6034e7fd656c1154e5 - POST /login_ 200 222.508ms -
::ffff:127.0.0.1 7d28d3bd356c0f38ca60cb04025f97fa a/2 GET /actor/v1/whoami 200 105.612ms -
::ffff:127.0.0.1 7e28f76b9ab6ea89a70f608722132e3f a/2 PATCH /v7/device(17) 200 47.362ms -
::ffff:127.0.0.1 7e28f76b9ab6ea89a70f608722132e3a a/2 PATCH /v7/device(12) 200 40.1ms -
::ffff:127.0.0.1 1e28f76b9ab6ea89a70f608722132e3f a/9 GET /device/v3/0123456789abcdef0123456789abcdef/state 200 80.2ms -
Contracts loaded
OPENBALENA-CONTRACTS-LOADED
`
	got := countRoutes(log)
	want := map[string]int{"GET /v7/device_type": 1, "POST /login_": 1, "GET /actor/v1/whoami": 1,
		"PATCH /v7/device(<id>)": 2, "GET /device/v3/<id>/state": 1}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
}

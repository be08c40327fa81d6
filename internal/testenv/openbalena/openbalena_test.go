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

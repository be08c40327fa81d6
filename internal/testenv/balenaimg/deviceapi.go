package balenaimg

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"slices"
	"sync"
)

// Request is one request the stand-in made of its API.
type Request struct {
	Method, Path, Auth string
	Body               map[string]json.RawMessage
}

// DeviceAPI is the balena API as far as the stand-in uses it (the
// supervisor's first calls): it records every request and answers only
// those made with the one device key Key.
type DeviceAPI struct {
	Key  string
	mu   sync.Mutex
	reqs []Request
}

func (a *DeviceAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var body map[string]json.RawMessage
	json.Unmarshal(b, &body)
	a.mu.Lock()
	a.reqs = append(a.reqs, Request{r.Method, r.URL.Path, r.Header.Get("Authorization"), body})
	a.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+a.Key {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// Requests is a copy of what the API has seen, in order.
func (a *DeviceAPI) Requests() []Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.reqs)
}

// Reported says whether the device's key sent a state report
// (PATCH /device/v3/state) keyed by uuid.
func (a *DeviceAPI) Reported(uuid string) bool {
	for _, r := range a.Requests() {
		if _, ok := r.Body[uuid]; ok && r.Method == http.MethodPatch && r.Path == "/device/v3/state" && r.Auth == "Bearer "+a.Key {
			return true
		}
	}
	return false
}

// Backup is a gzip tarball of files, in name order, as stage 2 leaves the
// backup on resin-data for the stand-in to unpack.
func Backup(files map[string][]byte) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		data := files[name]
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

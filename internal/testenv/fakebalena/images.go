package fakebalena

import (
	"bytes"
	"net/http"
	"time"
)

// AddImage serves data at /_fake/images/<name>, as a mirror of balenaOS
// images would: with Range requests, so a device's download can resume.
func (a *API) AddImage(name string, data []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.images == nil {
		a.images = map[string][]byte{}
	}
	a.images[name] = data
}

// ImageBytes is how many image bytes the fake has sent in all.
func (a *API) ImageBytes() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.imageBytes
}

func (a *API) image(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	data, ok := a.images[r.PathValue("name")]
	a.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	http.ServeContent(&countingWriter{ResponseWriter: w, a: a}, r, r.PathValue("name"), time.Time{}, bytes.NewReader(data))
}

type countingWriter struct {
	http.ResponseWriter
	a *API
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.a.mu.Lock()
	c.a.imageBytes += int64(n)
	c.a.mu.Unlock()
	return n, err
}

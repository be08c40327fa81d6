package openbalena

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// The API reads each device type's device-type.json (the options of its
// config.json) from an image bucket: images/<slug>/<version>/device-type.json,
// found by listing. The tiny S3 here serves one build of every device
// type the contracts know, made from the API's own generic-amd64
// device-type.json test fixture with the type's slug, name, architecture and
// aliases from its contract.
const (
	s3Bucket  = "balena-img"
	s3Prefix  = "images"
	s3Version = "6.8.1"
)

// deviceTypeJSONs makes images/<slug>/<s3Version>/device-type.json for
// every hw.device-type contract.
func deviceTypeJSONs(cache string) (map[string][]byte, error) {
	raw, err := os.ReadFile(filepath.Join(cache, "api", "test", "fixtures", "s3", "getObject.json"))
	if err != nil {
		return nil, err
	}
	var fixtures map[string]struct{ Body string }
	if err := json.Unmarshal(raw, &fixtures); err != nil {
		return nil, fmt.Errorf("the API's S3 fixtures: %w", err)
	}
	var tmpl map[string]any
	if err := json.Unmarshal([]byte(fixtures["images/generic-amd64/6.8.1/device-type.json"].Body), &tmpl); err != nil {
		return nil, fmt.Errorf("the generic-amd64 device-type.json fixture: %w", err)
	}
	dirs, err := filepath.Glob(filepath.Join(cache, "contracts", "contracts", "hw.device-type", "*", "contract.json"))
	if err != nil || len(dirs) == 0 {
		return nil, fmt.Errorf("no hw.device-type contracts under %s (%v)", cache, err)
	}
	out := map[string][]byte{}
	for _, p := range dirs {
		var c struct {
			Slug    string   `json:"slug"`
			Name    string   `json:"name"`
			Aliases []string `json:"aliases"`
			Data    struct {
				Arch string `json:"arch"`
			} `json:"data"`
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, &c); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		dt := map[string]any{}
		for k, v := range tmpl {
			dt[k] = v
		}
		aliases := []string{c.Slug}
		for _, a := range c.Aliases {
			if a != c.Slug {
				aliases = append(aliases, a)
			}
		}
		dt["slug"], dt["name"], dt["arch"], dt["state"], dt["aliases"] = c.Slug, c.Name, c.Data.Arch, "RELEASED", aliases
		if y, ok := tmpl["yocto"].(map[string]any); ok {
			yc := map[string]any{}
			for k, v := range y {
				yc[k] = v
			}
			yc["machine"] = c.Slug
			dt["yocto"] = yc
		}
		if out[s3Prefix+"/"+c.Slug+"/"+s3Version+"/device-type.json"], err = json.Marshal(dt); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// startS3 serves the device-type.json files, read-only and
// unauthenticated (path-style: /<bucket>/<key>): ListObjectsV2,
// HeadObject, GetObject.
func (s *Server) startS3() (string, error) {
	objects, err := deviceTypeJSONs(CacheDir())
	if err != nil {
		return "", err
	}
	keys := make([]string, 0, len(objects))
	for k := range objects {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	modified := time.Now().UTC()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		switch {
		case bucket != s3Bucket:
			s3Error(w, http.StatusNotFound, "NoSuchBucket")
		case key == "" && r.Method == http.MethodGet:
			listObjects(w, keys, objects, r.URL.Query().Get("prefix"), r.URL.Query().Get("delimiter"), modified)
		case objects[key] == nil:
			s3Error(w, http.StatusNotFound, "NoSuchKey")
		default:
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", fmt.Sprint(len(objects[key])))
			w.Header().Set("ETag", `"0"`)
			w.Header().Set("Last-Modified", modified.Format(http.TimeFormat))
			if r.Method != http.MethodHead {
				w.Write(objects[key])
			}
		}
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	s.s3 = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go s.s3.Serve(l)
	return "http://" + l.Addr().String(), nil
}

func s3Error(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code></Error>`, code)
}

// listObjects answers ListObjectsV2 for prefix, folding keys at the
// delimiter into common prefixes.
func listObjects(w http.ResponseWriter, keys []string, objects map[string][]byte, prefix, delim string, modified time.Time) {
	type content struct {
		Key          string
		LastModified string
		ETag         string
		Size         int
	}
	type common struct{ Prefix string }
	res := struct {
		XMLName        xml.Name `xml:"http://s3.amazonaws.com/doc/2006-03-01/ ListBucketResult"`
		Name           string
		Prefix         string
		Delimiter      string
		MaxKeys        int
		KeyCount       int
		IsTruncated    bool
		Contents       []content
		CommonPrefixes []common
	}{Name: s3Bucket, Prefix: prefix, Delimiter: delim, MaxKeys: 1000}
	seen := map[string]bool{}
	for _, k := range keys {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		rest := k[len(prefix):]
		if i := strings.Index(rest, delim); delim != "" && i >= 0 {
			p := prefix + rest[:i+len(delim)]
			if !seen[p] {
				seen[p] = true
				res.CommonPrefixes = append(res.CommonPrefixes, common{p})
			}
			continue
		}
		res.Contents = append(res.Contents, content{Key: k, LastModified: modified.Format(time.RFC3339),
			ETag: `"0"`, Size: len(objects[k])})
	}
	res.KeyCount = len(res.Contents) + len(res.CommonPrefixes)
	w.Header().Set("Content-Type", "application/xml")
	fmt.Fprint(w, xml.Header)
	xml.NewEncoder(w).Encode(res)
}

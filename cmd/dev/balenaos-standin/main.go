// Command balenaos-standin is what the balenaOS stand-in image
// (internal/testenv/balenaimg) runs on its first boot, after its init has
// mounted resin-boot and resin-data and brought up the network: it reads
// config.json as balenaOS does, reports what stage 2 left on resin-boot and
// resin-data, and reports to the balena API as the device — the
// supervisor's state report, PATCH /device/v3/state with the device's own
// API key, the body keyed by its UUID. Every line it prints starts with
// "STANDIN"; the last is "STANDIN-ONLINE uuid=…" once the API accepted the
// report, or "STANDIN-FAILED: …".
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

func main() {
	boot := flag.String("boot", "/mnt/boot", "where resin-boot is mounted")
	data := flag.String("data", "/mnt/data", "where resin-data is mounted")
	host := flag.String("host-addr", "10.0.2.2", "the host's loopback as this machine reaches it")
	tries := flag.Int("tries", 30, "state report attempts, 2 s apart")
	flag.Parse()
	if err := run(*boot, *data, *host, *tries); err != nil {
		fmt.Println("STANDIN-FAILED:", err)
		os.Exit(1)
	}
}

// deviceConfig is the part of config.json a device needs to come online.
type deviceConfig struct {
	UUID         string `json:"uuid"`
	DeviceAPIKey string `json:"deviceApiKey"`
	APIEndpoint  string `json:"apiEndpoint"`
	DeviceType   string `json:"deviceType"`
	AppID        any    `json:"applicationId"`
}

func run(boot, data, hostAddr string, tries int) error {
	raw, err := os.ReadFile(filepath.Join(boot, "config.json"))
	if err != nil {
		return fmt.Errorf("resin-boot has no config.json: %w", err)
	}
	var cfg deviceConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("config.json: %w", err)
	}
	if cfg.UUID == "" || cfg.DeviceAPIKey == "" || cfg.APIEndpoint == "" {
		return errors.New("config.json lacks uuid, deviceApiKey or apiEndpoint")
	}
	fmt.Printf("STANDIN config.json: uuid=%s deviceType=%s applicationId=%v apiEndpoint=%s\n",
		cfg.UUID, cfg.DeviceType, cfg.AppID, cfg.APIEndpoint)
	conns, _ := filepath.Glob(filepath.Join(boot, "system-connections", "*"))
	for i := range conns {
		conns[i] = filepath.Base(conns[i])
	}
	fmt.Printf("STANDIN system-connections: %d %s\n", len(conns), strings.Join(conns, " "))
	reportData(data)

	endpoint, err := reachable(cfg.APIEndpoint, hostAddr)
	if err != nil {
		return err
	}
	return report(endpoint, cfg, tries)
}

// reportData prints what resin-data holds: the backup (its entries) and
// stage 2's log.
func reportData(data string) {
	entries, _ := os.ReadDir(data)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	fmt.Printf("STANDIN resin-data: %s\n", strings.Join(names, " "))
	files, err := backupEntries(filepath.Join(data, "backup.tgz"))
	switch {
	case errors.Is(err, os.ErrNotExist):
		fmt.Println("STANDIN backup: none")
	case err != nil:
		fmt.Printf("STANDIN backup: unreadable: %v\n", err)
	default:
		sort.Strings(files)
		fmt.Printf("STANDIN backup: backup.tgz %d entries: %s\n", len(files), strings.Join(files, " "))
	}
}

func backupEntries(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, nil
		}
		if err != nil {
			return names, err
		}
		names = append(names, h.Name)
	}
}

// reachable maps an API on the host's loopback (the fake API of a test) to
// the address the guest reaches it at.
func reachable(endpoint, hostAddr string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", fmt.Errorf("apiEndpoint %q: %w", endpoint, err)
	}
	if h := u.Hostname(); h == "127.0.0.1" || h == "localhost" || h == "::1" {
		u.Host = net.JoinHostPort(hostAddr, u.Port())
		fmt.Printf("STANDIN the API is on the host's loopback: using %s\n", u.Host)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// report sends the state report until the API accepts it.
func report(endpoint string, cfg deviceConfig, tries int) error {
	body, _ := json.Marshal(map[string]any{cfg.UUID: map[string]any{
		"api_port": 48484, "os_version": "balenaOS stand-in", "os_variant": "dev",
		"supervisor_version": "stand-in", "update_status": "done", "apps": map[string]any{},
	}})
	client := &http.Client{Timeout: 10 * time.Second}
	var last string
	for i := 0; i < tries; i++ {
		if i > 0 {
			time.Sleep(2 * time.Second)
		}
		req, _ := http.NewRequest(http.MethodPatch, endpoint+"/device/v3/state", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+cfg.DeviceAPIKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			last = err.Error()
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		fmt.Printf("STANDIN state report: HTTP %d\n", resp.StatusCode)
		if resp.StatusCode/100 == 2 {
			fmt.Printf("STANDIN-ONLINE uuid=%s\n", cfg.UUID)
			return nil
		}
		last = resp.Status
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			break // the key is wrong; asking again will not change that
		}
	}
	return fmt.Errorf("state report to %s not accepted: %s", endpoint, last)
}

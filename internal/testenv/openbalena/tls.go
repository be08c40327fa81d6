package openbalena

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// A real device reaches the API at config.json's apiEndpoint,
// https://<API_HOST>, and trusts a self-signed openBalena through
// config.json's balenaRootCA (which the API fills from NODE_EXTRA_CA_CERTS).
// With Options.TLSNames the instance gets the same: its own CA, a
// certificate for 127.0.0.1 and those names, and a TLS front that forwards
// to the API.

// tlsFront is the CA and the listener of the TLS front.
type tlsFront struct {
	caFile string
	l      net.Listener
	srv    *http.Server
}

// startTLSFront makes the CA and certificate and listens; serve starts
// forwarding once the API's address is known.
func (s *Server) startTLSFront(names []string) (*tlsFront, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "openbalena-test-root-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	if ca, err = x509.ParseCertificate(caDER); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "openbalena-test-api"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			leaf.IPAddresses = append(leaf.IPAddresses, ip)
		} else {
			leaf.DNSNames = append(leaf.DNSNames, n)
		}
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	f := &tlsFront{caFile: filepath.Join(s.dir, "root-ca.pem")}
	if err := os.WriteFile(f.caFile, caPEM, 0o644); err != nil {
		return nil, err
	}
	s.CA = caPEM
	cert := tls.Certificate{Certificate: [][]byte{leafDER, caDER}, PrivateKey: key}
	if f.l, err = tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}}); err != nil {
		return nil, err
	}
	return f, nil
}

// serve forwards to the API at target, saying the request came over TLS
// (X-Forwarded-Proto: https), as openBalena's own TLS front does: the API
// in production mode redirects a request it thinks is plain HTTP to https,
// which a device's PATCH would follow as a GET.
func (f *tlsFront) serve(target string) error {
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(u)
		r.SetXForwarded()
	}}
	f.srv = &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	go f.srv.Serve(f.l)
	return nil
}

func (f *tlsFront) port() int { return f.l.Addr().(*net.TCPAddr).Port }

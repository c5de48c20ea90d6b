package kubetest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/csv"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// credentials are the files kube-apiserver reads at start, all in one
// directory, plus the values clients need.
type credentials struct {
	caPEM      []byte
	adminToken string

	servingCertFile string // serving certificate signed by the CA
	servingKeyFile  string
	saKeyFile       string // service-account token signing key, ECDSA P-256
	saPublicKeyFile string
	tokenFile       string // --token-auth-file
}

// certValidity is how long the generated certificates are valid. A cluster
// lives for one test run, so a day leaves a wide margin.
const certValidity = 24 * time.Hour

func writeCredentials(dir string, tokens []StaticToken) (credentials, error) {
	adminToken, err := randomToken()
	if err != nil {
		return credentials{}, err
	}
	creds := credentials{
		adminToken:      adminToken,
		servingCertFile: filepath.Join(dir, "apiserver.crt"),
		servingKeyFile:  filepath.Join(dir, "apiserver.key"),
		saKeyFile:       filepath.Join(dir, "service-account.key"),
		saPublicKeyFile: filepath.Join(dir, "service-account.pub"),
		tokenFile:       filepath.Join(dir, "tokens.csv"),
	}

	tokenCSV, err := tokenFile(adminToken, tokens)
	if err != nil {
		return credentials{}, err
	}
	caPEM, certPEM, keyPEM, err := servingCertificate()
	if err != nil {
		return credentials{}, err
	}
	saKeyPEM, saPublicPEM, err := serviceAccountKey()
	if err != nil {
		return credentials{}, err
	}
	creds.caPEM = caPEM

	files := []struct {
		path string
		data []byte
	}{
		{filepath.Join(dir, "ca.crt"), caPEM},
		{creds.servingCertFile, certPEM},
		{creds.servingKeyFile, keyPEM},
		{creds.saKeyFile, saKeyPEM},
		{creds.saPublicKeyFile, saPublicPEM},
		{creds.tokenFile, tokenCSV},
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			return credentials{}, fmt.Errorf("write %s: %w", f.path, err)
		}
	}
	return creds, nil
}

func randomToken() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate the admin token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// tokenFile renders the CSV that --token-auth-file reads: token, user, uid and
// then the groups joined by commas in one quoted field.
func tokenFile(adminToken string, tokens []StaticToken) ([]byte, error) {
	all := append([]StaticToken{{Token: adminToken, User: AdminUser, Groups: []string{"system:masters"}}}, tokens...)

	seen := make(map[string]bool, len(all))
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	for i, tok := range all {
		if tok.Token == "" || tok.User == "" {
			return nil, fmt.Errorf("static token %d for user %q: token and user must not be empty", i, tok.User)
		}
		// kube-apiserver splits the groups field on commas, and of two rows
		// with one token it keeps the last with only a warning in its log.
		for _, g := range tok.Groups {
			if g == "" || strings.Contains(g, ",") {
				return nil, fmt.Errorf("static token for user %q: group %q is invalid, it must be non-empty and contain no comma", tok.User, g)
			}
		}
		if seen[tok.Token] {
			return nil, fmt.Errorf("static token for user %q: the token is listed twice, give each user its own token", tok.User)
		}
		seen[tok.Token] = true

		record := []string{tok.Token, tok.User, tok.UID}
		if len(tok.Groups) > 0 {
			record = append(record, strings.Join(tok.Groups, ","))
		}
		if err := w.Write(record); err != nil {
			return nil, fmt.Errorf("render the token file: %w", err)
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return nil, fmt.Errorf("render the token file: %w", err)
	}
	return buf.Bytes(), nil
}

// servingCertificate generates a CA and a certificate for 127.0.0.1 and
// localhost signed by it, so clients can verify TLS with the CA alone.
func servingCertificate() (caPEM, certPEM, keyPEM []byte, err error) {
	now := time.Now()

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generate the CA key: %w", err)
	}
	caTemplate := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kubetest-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("create the CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("parse the CA certificate: %w", err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generate the serving key: %w", err)
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	certDER, err := x509.CreateCertificate(rand.Reader, template, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("create the serving certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("encode the serving key: %w", err)
	}

	caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	return caPEM, certPEM, keyPEM, nil
}

// serviceAccountKey generates the key pair kube-apiserver signs and verifies
// service-account tokens with.
func serviceAccountKey() (keyPEM, publicPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate the service-account key: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode the service-account key: %w", err)
	}
	publicDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, nil, fmt.Errorf("encode the service-account public key: %w", err)
	}
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	publicPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: publicDER})
	return keyPEM, publicPEM, nil
}

package kubetest

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// argoCRDFiles are minimal CustomResourceDefinitions for the argoproj.io/v1alpha1
// kinds that wfevents works with: spec and status accept any fields, as in Argo
// Workflows' "minimal" CRD manifests, so no Argo schema is enforced.
//
//go:embed testdata/crds/*.json
var argoCRDFiles embed.FS

// crdWaitTimeout bounds the wait for created CRDs to be served.
const crdWaitTimeout = 30 * time.Second

const crdsPath = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"

// ArgoCRDs returns the JSON of the CustomResourceDefinitions for workflows,
// workflowtemplates, clusterworkflowtemplates and workfloweventbindings in
// argoproj.io/v1alpha1, one document per CRD.
func ArgoCRDs() [][]byte {
	entries, err := argoCRDFiles.ReadDir("testdata/crds")
	if err != nil {
		panic(fmt.Sprintf("read the embedded CRDs: %v", err))
	}
	docs := make([][]byte, 0, len(entries))
	for _, e := range entries {
		data, err := argoCRDFiles.ReadFile(path.Join("testdata/crds", e.Name()))
		if err != nil {
			panic(fmt.Sprintf("read the embedded CRD %s: %v", e.Name(), err))
		}
		docs = append(docs, data)
	}
	return docs
}

// InstallArgoCRDs creates the CRDs of ArgoCRDs with cfg, which needs the
// permission to create CRDs (AdminConfig has it), and waits until they are
// served. It fails the test on error.
func InstallArgoCRDs(t testing.TB, cfg *rest.Config) {
	t.Helper()
	if err := CreateArgoCRDs(context.Background(), cfg); err != nil {
		t.Fatalf("kubetest: %v", err)
	}
}

// CreateArgoCRDs creates the CRDs of ArgoCRDs and waits until they are served,
// like InstallArgoCRDs but returning the error, for callers without a
// testing.TB such as the setup function of RunShared. A CRD that already
// exists is left as it is. The wait ends at the earlier of ctx's deadline and
// 30 seconds.
func CreateArgoCRDs(ctx context.Context, cfg *rest.Config) error {
	return CreateCRDs(ctx, cfg, ArgoCRDs()...)
}

// CreateCRDs creates each CustomResourceDefinition, given as JSON, and waits
// until every one is established and a list request on its resource succeeds.
// A CRD that already exists is left as it is.
func CreateCRDs(ctx context.Context, cfg *rest.Config, crds ...[]byte) error {
	ctx, cancel := context.WithTimeout(ctx, crdWaitTimeout)
	defer cancel()

	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return fmt.Errorf("create an HTTP client for %s: %w", cfg.Host, err)
	}
	defer client.CloseIdleConnections()
	host := strings.TrimSuffix(cfg.Host, "/")

	type crdInfo struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			Group    string `json:"group"`
			Versions []struct {
				Name string `json:"name"`
			} `json:"versions"`
			Names struct {
				Plural string `json:"plural"`
			} `json:"names"`
		} `json:"spec"`
	}
	infos := make([]crdInfo, len(crds))
	for i, doc := range crds {
		if err := json.Unmarshal(doc, &infos[i]); err != nil {
			return fmt.Errorf("parse CRD %d: %w", i, err)
		}
		info := infos[i]
		if info.Metadata.Name == "" || info.Spec.Group == "" || info.Spec.Names.Plural == "" || len(info.Spec.Versions) == 0 {
			return fmt.Errorf("CRD %d (%q) is missing metadata.name, spec.group, spec.names.plural or spec.versions", i, info.Metadata.Name)
		}

		status, body, err := do(ctx, client, http.MethodPost, host+crdsPath, doc)
		if err != nil {
			return fmt.Errorf("create CRD %s: %w", info.Metadata.Name, err)
		}
		if status != http.StatusCreated && status != http.StatusConflict {
			return fmt.Errorf("create CRD %s: status %d: %s", info.Metadata.Name, status, body)
		}
	}

	for _, info := range infos {
		if err := waitEstablished(ctx, client, host, info.Metadata.Name); err != nil {
			return err
		}
		// Established can be reported a moment before the resource's
		// handler serves requests, so also wait for a list to succeed.
		listURL := fmt.Sprintf("%s/apis/%s/%s/%s?limit=1", host, info.Spec.Group, info.Spec.Versions[0].Name, info.Spec.Names.Plural)
		if err := poll(ctx, "list "+info.Spec.Names.Plural, func() (bool, error) {
			status, body, err := do(ctx, client, http.MethodGet, listURL, nil)
			if err != nil {
				return false, err
			}
			if status != http.StatusOK {
				return false, fmt.Errorf("status %d: %s", status, body)
			}
			return true, nil
		}); err != nil {
			return err
		}
	}
	return nil
}

func waitEstablished(ctx context.Context, client *http.Client, host, name string) error {
	return poll(ctx, "CRD "+name+" established", func() (bool, error) {
		status, body, err := do(ctx, client, http.MethodGet, host+crdsPath+"/"+name, nil)
		if err != nil {
			return false, err
		}
		if status != http.StatusOK {
			return false, fmt.Errorf("status %d: %s", status, body)
		}
		var crd struct {
			Status struct {
				Conditions []struct {
					Type   string `json:"type"`
					Status string `json:"status"`
				} `json:"conditions"`
			} `json:"status"`
		}
		if err := json.Unmarshal([]byte(body), &crd); err != nil {
			return false, fmt.Errorf("parse CRD %s: %w", name, err)
		}
		for _, cond := range crd.Status.Conditions {
			if cond.Type == "Established" && cond.Status == "True" {
				return true, nil
			}
		}
		return false, fmt.Errorf("condition Established is not True yet")
	})
}

// poll calls check until it returns true or ctx ends. An error from check is
// kept only to explain a timeout.
func poll(ctx context.Context, what string, check func() (bool, error)) error {
	var lastErr error
	for {
		ok, err := check()
		if ok {
			return nil
		}
		lastErr = err

		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w, last check: %v", what, ctx.Err(), lastErr)
		case <-time.After(pollInterval):
		}
	}
}

// do sends a request with an optional JSON body and returns the status and at
// most the first 64 KiB of the response body.
func do(ctx context.Context, client *http.Client, method, url string, body []byte) (int, string, error) {
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, reader)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(data), err
}

package matcher_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/wfevents/wfevents/matcher"
	"github.com/wfevents/wfevents/model"
)

// benchmarkEvent is a GitHub push as the workers see it: the decoded
// fixture body, the headers GitHub sends and a service account caller.
func benchmarkEvent(b *testing.B) model.Event {
	b.Helper()
	body, err := os.ReadFile("../fixtures/webhooks/github/push.json")
	if err != nil {
		b.Fatal(err)
	}
	payload, err := matcher.DecodeJSON(body)
	if err != nil {
		b.Fatal(err)
	}
	return model.Event{
		ID:        "bench",
		Namespace: "argo",
		Payload:   payload,
		Headers:   githubHeaders(),
		Caller:    model.Identity{Subject: "system:serviceaccount:argo:github", Groups: []string{"system:serviceaccounts", "system:serviceaccounts:argo"}},
	}
}

// githubHeaders are the headers of a GitHub delivery after admission has
// dropped the signature.
func githubHeaders() map[string][]string {
	return map[string][]string{
		"Accept":                                 {"*/*"},
		"Content-Length":                         {"7421"},
		"Content-Type":                           {"application/json"},
		"User-Agent":                             {"GitHub-Hookshot/7a3bc31"},
		"X-Github-Delivery":                      {"72d3162e-cc78-11e3-81ab-4c9367dc0958"},
		"X-Github-Event":                         {"push"},
		"X-Github-Hook-Id":                       {"292430182"},
		"X-Github-Hook-Installation-Target-Id":   {"79929171"},
		"X-Github-Hook-Installation-Target-Type": {"repository"},
		"X-Forwarded-For":                        {"140.82.115.10"},
		"X-Forwarded-Proto":                      {"https"},
		"X-Request-Id":                           {"b4a0c5d2a4f1c3e5"},
	}
}

// benchmarkCatalog returns a catalog with n WorkflowTemplates in namespace
// argo. Each has an expression of the usual shape, with a repository name
// that only template 0 matches for the push fixture, and two parameters.
func benchmarkCatalog(b *testing.B, n int) *matcher.Catalog {
	b.Helper()
	catalog := matcher.NewCatalog("", nil)
	for i := range n {
		repository := fmt.Sprintf("repository-%d", i)
		if i == 0 {
			repository = "person-3/Hello-World"
		}
		err := catalog.Upsert(model.Template{
			Ref:             model.ResourceRef{Kind: model.KindWorkflowTemplate, Namespace: "argo", Name: fmt.Sprintf("template-%04d", i)},
			UID:             fmt.Sprintf("uid-%d", i),
			ResourceVersion: "1",
			Expression:      fmt.Sprintf(`metadata["x-github-event"] == ["push"] && payload.repository.full_name == %q && payload.ref == "refs/tags/simple-tag"`, repository),
			Parameters: []model.Parameter{
				{Name: "repository", Expression: "payload.repository.full_name"},
				{Name: "revision", Expression: "payload.after"},
			},
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return catalog
}

// BenchmarkMatch is the matching a worker does for one event: build the
// expression environment, take the programs in scope and evaluate each
// one's event expression. ns/resource divides the time by the number of
// templates in the namespace.
func BenchmarkMatch(b *testing.B) {
	ev := benchmarkEvent(b)
	everyNamespace := func(string) bool { return true }

	for _, n := range []int{1, 100, 1000} {
		catalog := benchmarkCatalog(b, n)
		b.Run(fmt.Sprintf("resources=%d", n), func(b *testing.B) {
			if matched := countMatches(b, catalog, ev); matched != 1 {
				b.Fatalf("%d templates match the push fixture, want 1", matched)
			}
			b.ReportAllocs()
			for b.Loop() {
				env := matcher.NewEnv(ev)
				for _, program := range catalog.InScope(ev.Namespace, everyNamespace) {
					if _, err := program.Match(env); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/resource")
		})
	}
}

// countMatches returns the number of templates in catalog that match ev.
func countMatches(b *testing.B, catalog *matcher.Catalog, ev model.Event) int {
	b.Helper()
	env := matcher.NewEnv(ev)
	matched := 0
	for _, program := range catalog.InScope(ev.Namespace, nil) {
		ok, err := program.Match(env)
		if err != nil {
			b.Fatal(err)
		}
		if ok {
			matched++
		}
	}
	return matched
}

// BenchmarkMatchParts splits BenchmarkMatch at 1,000 templates into its
// three steps, so a profile is not needed to see where the time goes.
func BenchmarkMatchParts(b *testing.B) {
	ev := benchmarkEvent(b)
	everyNamespace := func(string) bool { return true }
	catalog := benchmarkCatalog(b, 1000)

	b.Run("env", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			matcher.NewEnv(ev)
		}
	})
	b.Run("in-scope", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			catalog.InScope(ev.Namespace, everyNamespace)
		}
	})
	b.Run("match", func(b *testing.B) {
		env := matcher.NewEnv(ev)
		programs := catalog.InScope(ev.Namespace, everyNamespace)
		b.ReportAllocs()
		for b.Loop() {
			for _, program := range programs {
				if _, err := program.Match(env); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// BenchmarkFilterHeaders builds the metadata headers of a GitHub delivery.
func BenchmarkFilterHeaders(b *testing.B) {
	headers := githubHeaders()
	b.ReportAllocs()
	for b.Loop() {
		matcher.FilterHeaders(headers)
	}
}

// BenchmarkEncodeParameter formats expression results of each kind as
// parameter values.
func BenchmarkEncodeParameter(b *testing.B) {
	values := []struct {
		name  string
		value any
	}{
		{"string", "refs/heads/main"},
		{"int64", int64(9007199254740993)},
		{"float64", 3.14159},
		{"bool", true},
		{"object", map[string]any{"name": "Codertocat", "id": int64(21031067), "tags": []any{"a", "b"}}},
	}
	for _, v := range values {
		b.Run(v.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := matcher.EncodeParameter(v.value); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParameters computes the two parameters of the template that
// matches, which a worker does once per match.
func BenchmarkParameters(b *testing.B) {
	ev := benchmarkEvent(b)
	program := benchmarkCatalog(b, 1).InScope(ev.Namespace, nil)[0]
	env := matcher.NewEnv(ev)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := program.Parameters(env); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeJSON decodes the GitHub push fixture, as admission does
// with every body.
func BenchmarkDecodeJSON(b *testing.B) {
	body, err := os.ReadFile("../fixtures/webhooks/github/push.json")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := matcher.DecodeJSON(body); err != nil {
			b.Fatal(err)
		}
	}
}

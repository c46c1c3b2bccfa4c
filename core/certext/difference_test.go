package certext

import "testing"

func TestDifferenceNamesTheExtension(t *testing.T) {
	got := Extensions{Issuer: "https://token.actions.githubusercontent.com", SourceRepositoryRef: "refs/heads/main", GithubWorkflowRepository: "acme/app"}
	if _, _, _, ok := Difference(Extensions{SourceRepositoryRef: "refs/heads/main", GithubWorkflowRepository: "acme/app"}, got); ok {
		t.Fatal("matching extensions reported as different")
	}
	// The issuer is matched elsewhere (exactly or by pattern), never here.
	if _, _, _, ok := Difference(Extensions{Issuer: "https://other"}, got); ok {
		t.Fatal("issuer compared")
	}
	name, w, g, ok := Difference(Extensions{SourceRepositoryRef: "refs/heads/release"}, got)
	if !ok || name != "Source Repository Ref (1.3.6.1.4.1.57264.1.14)" || w != "refs/heads/release" || g != "refs/heads/main" {
		t.Fatalf("got %q %q %q %v", name, w, g, ok)
	}
	name, _, _, ok = Difference(Extensions{GithubWorkflowRepository: "evil/fork"}, got)
	if !ok || name != "GitHub Workflow Repository (1.3.6.1.4.1.57264.1.5)" {
		t.Fatalf("got %q %v", name, ok)
	}
}

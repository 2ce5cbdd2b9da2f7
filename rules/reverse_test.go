package rules

import "testing"

func TestReverse(t *testing.T) {
	t.Parallel()
	s, err := NewSet([]Rule{
		{Name: "aks-managed-mcr", Source: "mcr.microsoft.com/*", Target: "aks-managed-repository/*"},
		{Name: "dotnet-runtime", Source: "mcr.microsoft.com/dotnet/runtime", Target: "dotnet/runtime"},
		{Name: "library", Source: "docker.io/library/*", Target: "library/*"},
		{Name: "everything-ghcr", Source: "ghcr.io/*", Target: "ghcr/*"},
		// A static rule that shadows part of a wildcard target.
		{Name: "shadow", Source: "quay.io/x/pause", Target: "library/pause"},
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		host, repo, want, rule string
	}{
		{"mcr.microsoft.com", "oss/kubernetes/pause", "aks-managed-repository/oss/kubernetes/pause", "aks-managed-mcr"},
		{"mcr.microsoft.com", "dotnet/runtime", "dotnet/runtime", "dotnet-runtime"},
		{"docker.io", "library/nginx", "library/nginx", "library"},
		{"docker.io", "library/pause", "", ""}, // library/pause is quay.io's
		{"quay.io", "x/pause", "library/pause", "shadow"},
		{"ghcr.io", "a/b", "ghcr/a/b", "everything-ghcr"},
		{"docker.io", "other/nginx", "", ""},
		{"example.com", "a", "", ""},
	}
	for _, c := range cases {
		got, r, ok := s.Reverse(c.host, c.repo)
		if got != c.want || ok != (c.want != "") || r.Name != c.rule {
			t.Errorf("Reverse(%s, %s) = %q %q %v, want %q %q", c.host, c.repo, got, r.Name, ok, c.want, c.rule)
		}
	}
}

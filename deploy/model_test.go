package deploy_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/internal/units"
	"github.com/airlock/airlock/rules"
)

// TestCacheRuleJSON pins the API's and the stored state's field names
// (ACR's): the rule model is rules.Rule, the answer adds where it lives.
func TestCacheRuleJSON(t *testing.T) {
	t.Parallel()
	r := deploy.CacheRule{Rule: rules.Rule{Name: "dotnet", Source: "mcr.microsoft.com/dotnet/*", Target: "dotnet/*",
		CredentialSet: "creds", TagTTL: units.Duration(time.Minute), TagList: rules.TagListLocal}, Registry: "myacr", FromConfig: true}
	b, err := json.Marshal(r)
	want := `{"name":"dotnet","sourceRepository":"mcr.microsoft.com/dotnet/*","targetRepository":"dotnet/*","credentialSet":"creds","tagTTL":"1m0s","tagList":"local","registry":"myacr","fromConfig":true}`
	if err != nil || string(b) != want {
		t.Fatalf("got  %s (%v)\nwant %s", b, err, want)
	}
	// State written before the model was shared reads the same.
	var old deploy.CacheRule
	if err := json.Unmarshal([]byte(`{"name":"aks-managed-mcr","sourceRepository":"mcr.microsoft.com/*","targetRepository":"aks-managed-repository/*","tagTTL":"5m0s"}`), &old); err != nil {
		t.Fatal(err)
	}
	if old.Rule != (rules.Rule{Name: "aks-managed-mcr", Source: "mcr.microsoft.com/*", Target: "aks-managed-repository/*", TagTTL: units.Duration(5 * time.Minute)}) {
		t.Fatalf("decoded %+v", old)
	}
	err = json.Unmarshal([]byte(`{"name":"x","tagTTL":300}`), &old)
	if err == nil || !strings.Contains(err.Error(), "must be a string") {
		t.Fatalf("a bare number of nanoseconds: %v", err)
	}
}

package registry_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// Passwords, tokens and Authorization headers never reach the logs, error
// bodies or metrics, whatever the client does with them.
func TestCredentialsNeverLeak(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.DebugLevel)
	e := newAuthEnv(t, zap.New(core))
	host := strings.TrimPrefix(e.srv.URL, "http://")
	const wrong = "Wr0ng-Guess-pw"
	secrets := []string{adminPass, ciPass, wrong,
		base64.StdEncoding.EncodeToString([]byte("admin:" + adminPass)),
		base64.StdEncoding.EncodeToString([]byte("ci:" + wrong))}

	var bodies [][]byte
	keep := func(b []byte) { bodies = append(bodies, b) }
	tok := e.token("ci", ciPass, "repository:team/app:pull,push")
	secrets = append(secrets, tok)
	// Good and bad credentials, in every place a client may put them.
	for _, hdr := range []string{basic("admin", adminPass), basic("ci", wrong), "Bearer " + tok, "Bearer " + tok + "x", "Basic !!!", "Bearer " + ciPass} {
		_, b := e.do("GET", "/v2/team/app/manifests/"+ciPass[:8], "Authorization", hdr)
		keep(b)
		_, b = e.send("POST", "/v2/team/app/blobs/uploads/?digest=sha256:bad", []byte(ciPass), "Authorization", hdr)
		keep(b)
		_, b = e.do("GET", "/v2/_catalog", "Authorization", hdr)
		keep(b)
		_, b = e.do("GET", "/metrics", "Authorization", hdr)
		keep(b)
	}
	for _, form := range []url.Values{
		{"grant_type": {"password"}, "username": {"ci"}, "password": {wrong}, "service": {host}},
		{"grant_type": {"password"}, "username": {"admin"}, "password": {adminPass}, "service": {host}, "access_type": {"offline"}},
		{"grant_type": {"refresh_token"}, "refresh_token": {tok}, "service": {host}},
		{"grant_type": {"bogus"}, "password": {adminPass}},
	} {
		for _, ep := range []string{"/oauth2/token", "/oauth2/exchange"} {
			resp, b := e.send("POST", ep, []byte(form.Encode()), "Content-Type", "application/x-www-form-urlencoded")
			if resp.StatusCode != 200 {
				keep(b) // successful answers carry tokens by design
			} else {
				var out map[string]any
				json.Unmarshal(b, &out)
				for _, k := range []string{"access_token", "refresh_token"} {
					if s, ok := out[k].(string); ok {
						secrets = append(secrets, s)
					}
				}
			}
		}
	}
	_, b := e.do("GET", "/oauth2/token?service="+host+"&password="+url.QueryEscape(adminPass), "Authorization", basic("admin", wrong))
	keep(b)

	var logText bytes.Buffer
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	for _, entry := range logs.All() {
		buf, err := enc.EncodeEntry(entry.Entry, entry.Context)
		if err != nil {
			t.Fatal(err)
		}
		logText.Write(buf.Bytes())
	}
	if logs.Len() == 0 {
		t.Fatal("no logs captured")
	}
	var metricsText bytes.Buffer
	mfs, _ := e.prom.Gather()
	for _, mf := range mfs {
		expfmt.MetricFamilyToText(&metricsText, mf)
	}
	for _, s := range secrets {
		if strings.Contains(logText.String(), s) {
			t.Errorf("a secret (%d chars) is in the logs", len(s))
		}
		if strings.Contains(metricsText.String(), s) {
			t.Errorf("a secret (%d chars) is in the metrics", len(s))
		}
		for _, b := range bodies {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("a secret (%d chars) is in an error body: %s", len(s), b)
			}
		}
	}
}

package frontdoor_test

import (
	"net/http"
	"testing"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/ingress/frontdoor"
)

// The credential decision itself, on targeted and fan-out requests. (The
// worker refuses to send a credential to an auth: none server as well, so
// the end-to-end table cannot tell which side kept it back: this test holds
// the ingress to it.) On a request that reaches every server, the generic
// Authorization goes to no server but those with passthrough_on_fanout; a
// per-server header still goes to its server.
func TestCredential(t *testing.T) {
	h := http.Header{}
	h.Set("Authorization", "Bearer general")
	h.Set("X-Mcp-Other-Authorization", "Bearer just-for-other")
	h.Set("X-Mcp-Noauth-Authorization", "Bearer must-not-reach-noauth")
	targeted, fanOut := frontdoor.Targeted, frontdoor.FanOut
	for _, tt := range []struct {
		reach frontdoor.Reach
		srv   *config.Server
		want  string
	}{
		{targeted, &config.Server{Name: "demo"}, "Bearer general"},
		{targeted, &config.Server{Name: "other"}, "Bearer just-for-other"},
		{targeted, &config.Server{Name: "noauth", Auth: config.AuthNone}, ""},
		{targeted, &config.Server{Name: "none", Credentials: config.Credentials{AuthType: "none"}}, ""},
		{targeted, &config.Server{Name: "passthrough", Credentials: config.Credentials{AuthType: "true_passthrough"}}, "Bearer general"},
		{targeted, &config.Server{Name: "interactive", Credentials: config.Credentials{AuthType: "oauth2", OAuth2Flow: "authorization_code"}}, "Bearer general"},
		// A server with its own credential: nothing of the caller's is
		// sealed for it, not even a header addressed to it by name.
		{targeted, &config.Server{Name: "other", Credentials: config.Credentials{AuthType: "api_key", AuthValue: "k"}}, ""},
		{targeted, &config.Server{Name: "bearer", Credentials: config.Credentials{AuthType: "bearer_token", AuthValue: "k"}}, ""},
		{targeted, &config.Server{Name: "basic", Credentials: config.Credentials{AuthType: "basic", AuthValue: "u:p"}}, ""},
		{targeted, &config.Server{Name: "authz", Credentials: config.Credentials{AuthType: "authorization", AuthValue: "X k"}}, ""},
		{targeted, &config.Server{Name: "m2m", Credentials: config.Credentials{AuthType: "oauth2", OAuth2Flow: "client_credentials"}}, ""},
		{targeted, &config.Server{Name: "sigv4", Credentials: config.Credentials{AuthType: "aws_sigv4"}}, ""},
		{fanOut, &config.Server{Name: "demo"}, ""},
		{fanOut, &config.Server{Name: "interactive", Credentials: config.Credentials{AuthType: "oauth2"}}, ""},
		{fanOut, &config.Server{Name: "other"}, "Bearer just-for-other"},
		{fanOut, &config.Server{Name: "opted-in", PassthroughOnFanout: true}, "Bearer general"},
		{fanOut, &config.Server{Name: "other", PassthroughOnFanout: true}, "Bearer just-for-other"},
		{fanOut, &config.Server{Name: "noauth", Auth: config.AuthNone, PassthroughOnFanout: true}, ""},
		{fanOut, &config.Server{Name: "keyed", PassthroughOnFanout: true, Credentials: config.Credentials{AuthType: "api_key", AuthValue: "k"}}, ""},
	} {
		if got := frontdoor.Credential(h, tt.srv, tt.reach).Reveal(); got != tt.want {
			t.Errorf("%s (reach %d): %q, want %q", tt.srv.Name, tt.reach, got, tt.want)
		}
	}
	if got := frontdoor.Credential(http.Header{}, &config.Server{Name: "demo"}, frontdoor.Targeted); !got.IsZero() {
		t.Errorf("no Authorization: %q, want none", got.Reveal())
	}
}

package frontdoor_test

import (
	"net/http"
	"testing"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/ingress/frontdoor"
)

// The credential decision itself. (The worker refuses to send a credential
// to an auth: none server as well, so the end-to-end table cannot tell
// which side kept it back: this test holds the ingress to it.)
func TestCredential(t *testing.T) {
	h := http.Header{}
	h.Set("Authorization", "Bearer general")
	h.Set("X-Mcp-Other-Authorization", "Bearer just-for-other")
	h.Set("X-Mcp-Noauth-Authorization", "Bearer must-not-reach-noauth")
	for _, tt := range []struct {
		srv  *config.Server
		want string
	}{
		{&config.Server{Name: "demo"}, "Bearer general"},
		{&config.Server{Name: "other"}, "Bearer just-for-other"},
		{&config.Server{Name: "noauth", Auth: config.AuthNone}, ""},
		{&config.Server{Name: "none", Credentials: config.Credentials{AuthType: "none"}}, ""},
		{&config.Server{Name: "passthrough", Credentials: config.Credentials{AuthType: "true_passthrough"}}, "Bearer general"},
		{&config.Server{Name: "interactive", Credentials: config.Credentials{AuthType: "oauth2", OAuth2Flow: "authorization_code"}}, "Bearer general"},
		// A server with its own credential: nothing of the caller's is
		// sealed for it, not even a header addressed to it by name.
		{&config.Server{Name: "other", Credentials: config.Credentials{AuthType: "api_key", AuthValue: "k"}}, ""},
		{&config.Server{Name: "bearer", Credentials: config.Credentials{AuthType: "bearer_token", AuthValue: "k"}}, ""},
		{&config.Server{Name: "basic", Credentials: config.Credentials{AuthType: "basic", AuthValue: "u:p"}}, ""},
		{&config.Server{Name: "authz", Credentials: config.Credentials{AuthType: "authorization", AuthValue: "X k"}}, ""},
		{&config.Server{Name: "m2m", Credentials: config.Credentials{AuthType: "oauth2", OAuth2Flow: "client_credentials"}}, ""},
		{&config.Server{Name: "sigv4", Credentials: config.Credentials{AuthType: "aws_sigv4"}}, ""},
	} {
		if got := frontdoor.Credential(h, tt.srv, frontdoor.Targeted).Reveal(); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.srv.Name, got, tt.want)
		}
	}
	if got := frontdoor.Credential(http.Header{}, &config.Server{Name: "demo"}, frontdoor.Targeted); !got.IsZero() {
		t.Errorf("no Authorization: %q, want none", got.Reveal())
	}
}

// On a request that reaches every server, the generic Authorization goes
// to no server but those with passthrough_on_fanout; a per-server header
// still goes to its server.
func TestCredential_FanOut(t *testing.T) {
	h := http.Header{}
	h.Set("Authorization", "Bearer general")
	h.Set("X-Mcp-Other-Authorization", "Bearer just-for-other")
	for _, tt := range []struct {
		srv  *config.Server
		want string
	}{
		{&config.Server{Name: "demo"}, ""},
		{&config.Server{Name: "interactive", Credentials: config.Credentials{AuthType: "oauth2"}}, ""},
		{&config.Server{Name: "other"}, "Bearer just-for-other"},
		{&config.Server{Name: "opted-in", PassthroughOnFanout: true}, "Bearer general"},
		{&config.Server{Name: "other", PassthroughOnFanout: true}, "Bearer just-for-other"},
		{&config.Server{Name: "noauth", Auth: config.AuthNone, PassthroughOnFanout: true}, ""},
		{&config.Server{Name: "keyed", PassthroughOnFanout: true, Credentials: config.Credentials{AuthType: "api_key", AuthValue: "k"}}, ""},
	} {
		if got := frontdoor.Credential(h, tt.srv, frontdoor.FanOut).Reveal(); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.srv.Name, got, tt.want)
		}
	}
}

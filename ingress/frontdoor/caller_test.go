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
	} {
		if got := frontdoor.Credential(h, tt.srv).Reveal(); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.srv.Name, got, tt.want)
		}
	}
	if got := frontdoor.Credential(http.Header{}, &config.Server{Name: "demo"}); !got.IsZero() {
		t.Errorf("no Authorization: %q, want none", got.Reveal())
	}
}

package config

import (
	"encoding/base64"
	"net/url"
	"slices"
	"strings"
)

// Auth types: LiteLLM's auth_type values, with LiteLLM's meaning. They say
// what an MCP server receives on every request the workers send it.
const (
	// AuthTypePassthrough is the empty auth_type: the caller's credential,
	// passed through unchanged (see ingress/frontdoor.Credential).
	AuthTypePassthrough = ""
	// AuthTypeTruePassthrough is LiteLLM's explicit name for the same.
	AuthTypeTruePassthrough = "true_passthrough"
	// AuthTypeNone: no credential at all.
	AuthTypeNone = "none"
	// AuthTypeAPIKey: X-API-Key: <auth_value>.
	AuthTypeAPIKey = "api_key"
	// AuthTypeBearerToken: Authorization: Bearer <auth_value>.
	AuthTypeBearerToken = "bearer_token"
	// AuthTypeBasic: Authorization: Basic <base64(user:password)>. The value
	// is user:password (LiteLLM's meaning, encoded by the worker) or already
	// base64 of it (sent as it is).
	AuthTypeBasic = "basic"
	// AuthTypeAuthorization: Authorization: <auth_value>, scheme included.
	AuthTypeAuthorization = "authorization"
	// AuthTypeOAuth2 with oauth2_flow client_credentials: Authorization:
	// Bearer <a token the worker obtains from token_url>. Without that flow
	// (or with authorization_code, whose interactive flow the client runs
	// itself) the caller's credential passes through.
	AuthTypeOAuth2 = "oauth2"
	// AuthTypeAWSSigV4: every request signed with AWS Signature Version 4.
	AuthTypeAWSSigV4 = "aws_sigv4"
	// AuthTypeOAuth2TokenExchange: Authorization: Bearer <a token the
	// worker obtains for this server by exchanging the caller's token at
	// token_exchange_endpoint (RFC 8693, LiteLLM's "OBO")>. The caller's
	// own token never reaches the server.
	AuthTypeOAuth2TokenExchange = "oauth2_token_exchange"
)

// DefaultSubjectTokenType is the subject_token_type of a token exchange
// that names none (RFC 8693's access token type, as LiteLLM's default).
const DefaultSubjectTokenType = "urn:ietf:params:oauth:token-type:access_token"

// OAuth2 flows (oauth2_flow).
const (
	OAuth2ClientCredentials = "client_credentials"
	OAuth2AuthorizationCode = "authorization_code"
)

// DefaultAWSServiceName is the SigV4 service of aws_sigv4 servers that name
// none: Bedrock AgentCore's, as LiteLLM's default.
const DefaultAWSServiceName = "bedrock-agentcore"

// DefaultAWSSessionName is the STS role session name of aws_sigv4 servers
// with aws_role_name and no aws_session_name.
const DefaultAWSSessionName = "toolbus"

// authTypes lists every accepted auth_type, for messages.
var authTypes = []string{AuthTypeNone, AuthTypeAPIKey, AuthTypeBearerToken, AuthTypeBasic, AuthTypeAuthorization,
	AuthTypeOAuth2, AuthTypeTruePassthrough, AuthTypeAWSSigV4, AuthTypeOAuth2TokenExchange}

// Credentials are the credential settings of one MCP server, with LiteLLM's
// key names. They are embedded in Server, so they sit directly in the
// server's mcp_servers entry. Every field tagged secret:"true" holds a
// secret (or, for maps, secret values): anything that prints a
// configuration redacts them. Only workers use the secrets; the ingress
// reads only what kind of credential a server has.
type Credentials struct {
	// AuthType is what the server receives (the AuthType* constants).
	// Default: the caller's credential, passed through (also what the older
	// auth: passthrough says; auth: none is the same as auth_type: none).
	AuthType string `yaml:"auth_type"`
	// AuthValue is the service credential of api_key, bearer_token, basic
	// and authorization.
	AuthValue string `yaml:"auth_value" secret:"true"`
	// AuthenticationToken is AuthValue's older LiteLLM name.
	AuthenticationToken string `yaml:"authentication_token" secret:"true"`
	// StaticHeaders are sent on every request to the server, whatever its
	// auth_type (a header the credential itself sets is refused at load).
	StaticHeaders map[string]string `yaml:"static_headers" secret:"true"`

	// OAuth2Flow is client_credentials (the worker obtains a token) or
	// authorization_code / empty (the caller brings one).
	OAuth2Flow   string   `yaml:"oauth2_flow"`
	ClientID     string   `yaml:"client_id"`
	ClientSecret string   `yaml:"client_secret" secret:"true"`
	TokenURL     string   `yaml:"token_url"`
	Scopes       []string `yaml:"scopes"`
	// AuthorizationURL and RegistrationURL are the upstream authorization
	// server's endpoints for the interactive flow (oauth2 without
	// client_credentials) that the ingress proxies (ingress/oauthproxy);
	// unset, they are discovered from the server's metadata.
	AuthorizationURL string `yaml:"authorization_url"`
	RegistrationURL  string `yaml:"registration_url"`

	// Token exchange (auth_type oauth2_token_exchange; LiteLLM's names):
	// the endpoint, the audience and/or resource the exchanged token is
	// asked for, the type of the caller's token (default
	// DefaultSubjectTokenType). ClientID, ClientSecret and Scopes above are
	// the gateway's client at that endpoint and the scopes it asks for.
	TokenExchangeEndpoint string `yaml:"token_exchange_endpoint"`
	Audience              string `yaml:"audience"`
	Resource              string `yaml:"resource"`
	SubjectTokenType      string `yaml:"subject_token_type"`

	// AWS SigV4 (auth_type aws_sigv4): region (required), service (default
	// bedrock-agentcore) and static keys (an optional session token for
	// temporary ones), always required: the ambient AWS credential chain is
	// not read. With aws_role_name (a role ARN; LiteLLM's role assumption)
	// the keys are only the STS client's: workers assume the role through
	// STS AssumeRole with session name aws_session_name (default
	// DefaultAWSSessionName), at aws_sts_endpoint (default AWS's regional
	// endpoint), and sign with the temporary credentials.
	AWSRegionName      string `yaml:"aws_region_name"`
	AWSServiceName     string `yaml:"aws_service_name"`
	AWSAccessKeyID     string `yaml:"aws_access_key_id" secret:"true"`
	AWSSecretAccessKey string `yaml:"aws_secret_access_key" secret:"true"`
	AWSSessionToken    string `yaml:"aws_session_token" secret:"true"`
	AWSRoleName        string `yaml:"aws_role_name"`
	AWSSessionName     string `yaml:"aws_session_name"`
	AWSSTSEndpoint     string `yaml:"aws_sts_endpoint"`
}

// ReceivesCaller reports whether the server's workers receive the caller's
// credential (sealed): no auth_type, true_passthrough, or oauth2 without the
// client_credentials flow, which pass it through; oauth2_token_exchange,
// whose workers exchange it and send only the exchanged token.
func (c *Credentials) ReceivesCaller() bool {
	switch c.AuthType {
	case AuthTypePassthrough, AuthTypeTruePassthrough, AuthTypeOAuth2TokenExchange:
		return true
	case AuthTypeOAuth2:
		return c.OAuth2Flow != OAuth2ClientCredentials
	}
	return false
}

// InteractiveOAuth2 reports whether the server is an oauth2 server whose
// callers obtain their token through the interactive flow (oauth2 without
// client_credentials): the ingress then answers for its OAuth discovery
// and proxies the flow to the server's authorization server
// (ingress/oauthproxy).
func (c *Credentials) InteractiveOAuth2() bool {
	return c.AuthType == AuthTypeOAuth2 && c.OAuth2Flow != OAuth2ClientCredentials
}

// ExchangesCaller reports whether the server's workers exchange the
// caller's credential for one of the server's own (oauth2_token_exchange):
// the caller's token then goes to the token exchange endpoint only, never
// to the server.
func (c *Credentials) ExchangesCaller() bool {
	return c.AuthType == AuthTypeOAuth2TokenExchange
}

// HasServiceCredential reports whether the server has a credential of its
// own, which workers send instead of any caller's: such a server never
// receives the caller's Authorization.
func (c *Credentials) HasServiceCredential() bool {
	return c.AuthType != AuthTypeNone && !c.ReceivesCaller()
}

// ServiceHeader is the header a static service credential sets, and its
// value: X-API-Key or Authorization for api_key, bearer_token, basic and
// authorization; empty for every other auth_type (oauth2 client credentials
// and SigV4 are computed per request by the worker). Call it on a
// normalized configuration.
func (c *Credentials) ServiceHeader() (name, value string) {
	switch c.AuthType {
	case AuthTypeAPIKey:
		return "X-API-Key", c.AuthValue
	case AuthTypeBearerToken:
		return "Authorization", "Bearer " + c.AuthValue
	case AuthTypeAuthorization:
		return "Authorization", c.AuthValue
	case AuthTypeBasic:
		if strings.Contains(c.AuthValue, ":") {
			return "Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte(c.AuthValue))
		}
		return "Authorization", "Basic " + c.AuthValue
	}
	return "", ""
}

// credentialHeader is the header the auth_type itself sets, if any.
func (c *Credentials) credentialHeader() string {
	switch c.AuthType {
	case AuthTypeAPIKey:
		return "X-API-Key"
	case AuthTypeBearerToken, AuthTypeBasic, AuthTypeAuthorization, AuthTypeAWSSigV4, AuthTypeOAuth2TokenExchange:
		return "Authorization"
	case AuthTypeOAuth2:
		if c.OAuth2Flow == OAuth2ClientCredentials {
			return "Authorization"
		}
	}
	return ""
}

// normalizeCredentials canonicalises the spellings of s's credential
// settings: auth_type and oauth2_flow lower case, authentication_token
// into auth_value, the older auth: none into auth_type none, and the older
// auth field set to match (none or passthrough).
func (s *Server) normalizeCredentials() {
	c := &s.Credentials
	c.AuthType = strings.ToLower(strings.TrimSpace(c.AuthType))
	c.OAuth2Flow = strings.ToLower(strings.TrimSpace(c.OAuth2Flow))
	if c.AuthValue == "" {
		c.AuthValue = c.AuthenticationToken
	}
	if c.AuthType == AuthTypePassthrough && s.Auth == AuthNone {
		c.AuthType = AuthTypeNone
	}
	if c.AuthType == AuthTypeAWSSigV4 && c.AWSServiceName == "" {
		c.AWSServiceName = DefaultAWSServiceName
	}
	if c.AuthType == AuthTypeAWSSigV4 && c.AWSRoleName != "" && c.AWSSessionName == "" {
		c.AWSSessionName = DefaultAWSSessionName
	}
	if c.AuthType == AuthTypeOAuth2TokenExchange && c.SubjectTokenType == "" {
		c.SubjectTokenType = DefaultSubjectTokenType
	}
	if s.Auth == "" {
		s.Auth = AuthPassthrough
		if c.AuthType == AuthTypeNone {
			s.Auth = AuthNone
		}
	}
}

// validateCredentials reports every problem of s's credential settings,
// naming the server and the key.
func (s *Server) validateCredentials(bad func(format string, args ...any)) {
	c := &s.Credentials
	where := "mcp_servers." + s.Name
	if s.Auth != AuthPassthrough && s.Auth != AuthNone {
		bad("%s.auth: %q is not passthrough or none", where, s.Auth)
	}
	if s.Auth == AuthNone && c.AuthType != AuthTypeNone {
		bad("%s: auth none contradicts auth_type %s", where, c.AuthType)
	}
	if s.Auth == AuthNone && s.AuthEnv != "" {
		bad("%s: auth none with auth_env", where)
	}
	if c.AuthType != AuthTypePassthrough && !slices.Contains(authTypes, c.AuthType) {
		bad("%s.auth_type: %q is not one of %s", where, c.AuthType, strings.Join(authTypes, ", "))
		return
	}
	if c.AuthenticationToken != "" && c.AuthValue != c.AuthenticationToken {
		bad("%s: auth_value and authentication_token (its older name) differ", where)
	}
	stdio := s.Transport == TransportStdio
	if stdio && (c.HasServiceCredential() || len(c.StaticHeaders) > 0) {
		bad("%s: a stdio server takes no service credential or static_headers (auth_type %s); use env", where, c.AuthType)
	}
	if s.PassthroughOnFanout && (!c.ReceivesCaller() || s.Auth == AuthNone) {
		bad("%s.passthrough_on_fanout: a server with auth_type %s does not receive the caller's Authorization", where, c.AuthType)
	}
	if c.HasServiceCredential() && s.AuthEnv != "" {
		bad("%s.auth_env: a server with auth_type %s does not receive the caller's credential", where, c.AuthType)
	}
	switch c.AuthType {
	case AuthTypeAPIKey, AuthTypeBearerToken, AuthTypeAuthorization, AuthTypeBasic:
		if c.AuthValue == "" {
			bad("%s.auth_value: required for auth_type %s", where, c.AuthType)
		} else if !validHeaderValue(c.AuthValue) {
			bad("%s.auth_value: control characters are not allowed in a header value", where)
		} else if c.AuthType == AuthTypeBasic && !validBasic(c.AuthValue) {
			bad("%s.auth_value: want user:password (or its base64) for auth_type basic", where)
		}
	default:
		if c.AuthValue != "" {
			bad("%s.auth_value: only auth_type api_key, bearer_token, basic and authorization take one (auth_type is %q)", where, c.AuthType)
		}
	}
	switch c.AuthType {
	case AuthTypeOAuth2:
		switch c.OAuth2Flow {
		case OAuth2ClientCredentials:
			if c.ClientID == "" {
				bad("%s.client_id: required for oauth2_flow client_credentials", where)
			}
			if u, err := url.Parse(c.TokenURL); c.TokenURL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad("%s.token_url: an http(s) URL is required for oauth2_flow client_credentials", where)
			}
		case "", OAuth2AuthorizationCode:
			if s.Transport == TransportStdio {
				bad("%s: interactive oauth2 needs an http or sse server", where)
			}
		default:
			bad("%s.oauth2_flow: %q is not client_credentials or authorization_code", where, c.OAuth2Flow)
		}
	case AuthTypeAWSSigV4:
		if c.AWSRegionName == "" {
			bad("%s.aws_region_name: required for auth_type aws_sigv4", where)
		}
		if c.AWSAccessKeyID == "" || c.AWSSecretAccessKey == "" {
			bad("%s: auth_type aws_sigv4 needs aws_access_key_id and aws_secret_access_key, with aws_role_name too (the STS client's; the ambient AWS credential chain is not read)", where)
		}
		if c.AWSRoleName == "" && (c.AWSSessionName != "" || c.AWSSTSEndpoint != "") {
			bad("%s: aws_session_name and aws_sts_endpoint are only for a server with aws_role_name", where)
		}
		if c.AWSRoleName != "" && !strings.HasPrefix(c.AWSRoleName, "arn:") {
			bad("%s.aws_role_name: want a role ARN (arn:aws:iam::ACCOUNT:role/NAME)", where)
		}
		if c.AWSRoleName != "" && !validRoleSessionName(c.AWSSessionName) {
			bad("%s.aws_session_name: want 2 to 64 letters, digits or +=,.@_- (STS's RoleSessionName)", where)
		}
		if c.AWSSTSEndpoint != "" && !httpURL(c.AWSSTSEndpoint) {
			bad("%s.aws_sts_endpoint: want an http(s) URL", where)
		}
	case AuthTypeOAuth2TokenExchange:
		if stdio {
			bad("%s: a stdio server cannot use auth_type oauth2_token_exchange", where)
		}
		if !httpURL(c.TokenExchangeEndpoint) {
			bad("%s.token_exchange_endpoint: an http(s) URL is required for auth_type oauth2_token_exchange", where)
		}
		if c.ClientID == "" {
			bad("%s.client_id: required for auth_type oauth2_token_exchange", where)
		}
		if c.Audience == "" && c.Resource == "" {
			bad("%s: auth_type oauth2_token_exchange needs audience or resource (what the exchanged token is for)", where)
		}
		if c.Resource != "" && !httpURL(c.Resource) {
			bad("%s.resource: want an absolute http(s) URI (RFC 8707)", where)
		}
	}
	if c.AuthType != AuthTypeOAuth2 && c.OAuth2Flow != "" {
		bad("%s.oauth2_flow: only for auth_type oauth2", where)
	}
	if c.AuthType != AuthTypeOAuth2TokenExchange && (c.TokenExchangeEndpoint != "" || c.Audience != "" || c.Resource != "" || c.SubjectTokenType != "") {
		bad("%s: token_exchange_endpoint, audience, resource and subject_token_type are only for auth_type oauth2_token_exchange", where)
	}
	for _, u := range []struct{ key, value string }{
		{"authorization_url", c.AuthorizationURL}, {"registration_url", c.RegistrationURL}, {"token_url", c.TokenURL},
	} {
		if u.value != "" && !httpURL(u.value) {
			bad("%s.%s: want an http(s) URL", where, u.key)
		} else if u.value != "" && u.key != "token_url" && !c.InteractiveOAuth2() {
			bad("%s.%s: only for auth_type oauth2 without client_credentials", where, u.key)
		}
	}
	own := c.credentialHeader()
	for _, name := range sortedKeys(c.StaticHeaders) {
		switch {
		case !validHeaderName(name):
			bad("%s.static_headers: %q is not a valid header name", where, name)
		case !validHeaderValue(c.StaticHeaders[name]):
			bad("%s.static_headers.%s: control characters are not allowed in a header value", where, name)
		case own != "" && strings.EqualFold(name, own):
			bad("%s.static_headers.%s: auth_type %s sets this header", where, name, c.AuthType)
		}
	}
}

// httpURL reports whether v is an absolute http(s) URL with a host and no
// fragment.
func httpURL(v string) bool {
	u, err := url.Parse(v)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.Fragment == ""
}

// validRoleSessionName accepts what STS accepts as a RoleSessionName:
// 2 to 64 of [A-Za-z0-9+=,.@_-].
func validRoleSessionName(v string) bool {
	if len(v) < 2 || len(v) > 64 {
		return false
	}
	for _, r := range v {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("+=,.@_-", r)) {
			return false
		}
	}
	return true
}

// validBasic accepts user:password, or the base64 of it.
func validBasic(v string) bool {
	if strings.Contains(v, ":") {
		return true
	}
	raw, err := base64.StdEncoding.DecodeString(v)
	return err == nil && strings.Contains(string(raw), ":")
}

// validHeaderName reports whether name is an HTTP field name (RFC 9110
// token).
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if r >= 0x7f || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}

// validHeaderValue refuses control characters (CR and LF above all, which
// would split a header), tab excepted.
func validHeaderValue(v string) bool {
	return !strings.ContainsFunc(v, func(r rune) bool { return (r < ' ' && r != '\t') || r == 0x7f })
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

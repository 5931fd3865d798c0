package httpapi

import (
	"net/http"
	"net/url"
	"slices"

	"github.com/gin-gonic/gin"

	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/ingress/frontdoor"
)

// LiteLLM's read-only MCP management endpoints, for clients and UIs that
// read them (litellm/proxy/management_endpoints/mcp_management_endpoints.py
// and litellm/proxy/_experimental/mcp_server/rest_endpoints.py). Servers
// come from the config file, so there is nothing to create, update or
// delete: those routes are not served.

// mcpEnabled serves GET /mcp/enabled: whether the MCP gateway is on, as
// LiteLLM answers it ({"enabled": MCP_AVAILABLE}: get_mcp_server_enabled
// in litellm/proxy/_experimental/mcp_server/server.py).
func (a *API) mcpEnabled(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"enabled": true})
}

// serverView is one server as GET /v1/mcp/server shows it: the fields of
// LiteLLM's LiteLLM_MCPServerTable that hold no secret. Credentials
// (auth_value, client_secret, static_headers, env, aws_*) never appear; the
// url is its origin only (scheme and host), as a path, user information or
// query may carry a credential (a Zapier URL holds its key in the path).
type serverView struct {
	ServerID        string         `json:"server_id"`
	ServerName      string         `json:"server_name"`
	Alias           *string        `json:"alias"`
	Description     *string        `json:"description"`
	URL             *string        `json:"url"`
	Transport       string         `json:"transport"`
	AuthType        *string        `json:"auth_type"` // as configured; null when unset
	MCPInfo         map[string]any `json:"mcp_info"`
	MCPAccessGroups []string       `json:"mcp_access_groups"`
	AllowedTools    []string       `json:"allowed_tools"`
	DisallowedTools []string       `json:"disallowed_tools"`
}

// listServers serves GET /v1/mcp/server: the servers the key may use
// (LiteLLM's fetch_all_mcp_servers shape: a JSON array).
func (a *API) listServers(c *gin.Context) {
	servers, err := a.policy.Servers(caller(c), frontdoor.Selection{})
	if err != nil {
		abortWithError(c, err)
		return
	}
	out := make([]serverView, 0, len(servers))
	for _, srv := range servers {
		out = append(out, viewOf(srv))
	}
	c.JSON(http.StatusOK, out)
}

// getServer serves GET /v1/mcp/server/{server_id}: one server the key may
// use, by its LiteLLM server id, name or alias.
func (a *API) getServer(c *gin.Context) {
	srv, err := a.policy.Server(caller(c), c.Param("id"))
	if err != nil {
		abortWithError(c, err)
		return
	}
	c.JSON(http.StatusOK, viewOf(srv))
}

// accessGroups serves GET /v1/mcp/access_groups: the access groups of the
// servers the key may use, sorted ({"access_groups": [...]}, LiteLLM's
// shape).
func (a *API) accessGroups(c *gin.Context) {
	servers, err := a.policy.Servers(caller(c), frontdoor.Selection{})
	if err != nil {
		abortWithError(c, err)
		return
	}
	var groups []string
	for _, srv := range servers {
		groups = append(groups, srv.AccessGroups...)
	}
	slices.Sort(groups)
	c.JSON(http.StatusOK, gin.H{"access_groups": nonNil(slices.Compact(groups))})
}

func viewOf(srv *config.Server) serverView {
	v := serverView{
		ServerID: srv.ServerID(), ServerName: srv.Name, Transport: srv.Transport,
		MCPInfo: srv.MCPInfoMap(), MCPAccessGroups: nonNil(srv.AccessGroups),
		AllowedTools: nonNil(srv.AllowedTools), DisallowedTools: nonNil(srv.DisallowedTools),
	}
	if srv.Alias != "" {
		v.Alias = &srv.Alias
	}
	if srv.Description != "" {
		v.Description = &srv.Description
	}
	if u, err := url.Parse(srv.URL); err == nil && u.Host != "" {
		origin := u.Scheme + "://" + u.Host
		v.URL = &origin
	}
	if srv.AuthType != "" {
		v.AuthType = &srv.AuthType
	}
	return v
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// managementTools serves GET /v1/mcp/tools: the tools the key may use, of
// the servers ?server_id= (or the selection headers) names, in the REST
// list's shape (listTools).
func (a *API) managementTools(c *gin.Context) {
	a.listTools(c)
}

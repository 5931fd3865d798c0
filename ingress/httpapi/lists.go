package httpapi

import (
	"encoding/json"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
	"github.com/toolbus/toolbus/ingress/frontdoor"
)

// listedTool is LiteLLM's REST tool shape: the MCP tool object with
// mcp_info added (ListMCPToolsRestAPIResponseObject in
// litellm/proxy/_experimental/mcp_server/server.py).
type listedTool map[string]json.RawMessage

// mcpInfo is a listed tool's mcp_info: the server's configured mcp_info
// map (config.Server.MCPInfoMap: server_name and description filled in as
// LiteLLM fills them) with server_id (LiteLLM's stable id) and alias.
func mcpInfo(srv *config.Server) json.RawMessage {
	info := srv.MCPInfoMap()
	info["server_name"] = srv.Name
	info["server_id"] = srv.ServerID()
	if srv.Alias != "" {
		info["alias"] = srv.Alias
	}
	raw, _ := json.Marshal(info)
	return raw
}

// listResponse is LiteLLM's REST list shape. Error is null unless no tool
// came back from any server ("partial_failure", LiteLLM's value); Failures
// (toolbus's) names every server that could not list, also when others
// did.
type listResponse struct {
	Tools    []listedTool    `json:"tools"`
	Error    *string         `json:"error"`
	Message  string          `json:"message"`
	Failures []serverFailure `json:"failures,omitempty"`
}

type serverFailure struct {
	Server string           `json:"server"`
	Error  *contracts.Error `json:"error"`
}

// listSelection is the servers a REST list names: ?server_id= (a server's
// name, alias or LiteLLM server id), else ?mcp_server_name=, else the
// x-mcp-servers and x-mcp-access-groups headers (frontdoor.Selection).
func listSelection(c *gin.Context) frontdoor.Selection {
	named := c.Query("server_id")
	if named == "" {
		named = c.Query("mcp_server_name")
	}
	return frontdoor.SelectionOf(named, c.Request.Header)
}

// listTools serves GET /mcp/tools/list and /mcp-rest/tools/list.
func (a *API) listTools(c *gin.Context) {
	resp, ok := a.list(c)
	if !ok {
		return
	}
	c.JSON(http.StatusOK, resp)
}

// list lists the tools of the request's selection, LiteLLM's REST shape;
// on failure it has written the error response.
func (a *API) list(c *gin.Context) (*listResponse, bool) {
	sel := listSelection(c)
	servers, err := a.policy.Servers(caller(c), sel)
	if err != nil {
		abortWithError(c, err)
		return nil, false
	}
	reach := frontdoor.FanOut
	if !sel.IsZero() && len(servers) == 1 {
		frontdoor.Of(c).Server = servers[0].Name
		reach = frontdoor.Targeted
	}
	resp := &listResponse{Tools: []listedTool{}, Message: "Successfully retrieved tools"}
	for _, l := range a.policy.List(c.Request.Context(), caller(c), servers, reach) {
		if l.Err != nil {
			resp.Failures = append(resp.Failures, serverFailure{Server: l.Server.Name, Error: l.Err})
			continue
		}
		info := mcpInfo(l.Server)
		for _, t := range l.Tools {
			var obj listedTool
			if json.Unmarshal(t.Raw, &obj) != nil {
				continue
			}
			obj["mcp_info"] = info
			resp.Tools = append(resp.Tools, obj)
		}
	}
	switch {
	case len(servers) == 1 && len(resp.Failures) == 1:
		abortWithError(c, resp.Failures[0].Error) // one server asked for, and it failed
		return nil, false
	case len(resp.Failures) > 0 && len(resp.Tools) == 0:
		partial := "partial_failure"
		resp.Error = &partial
		resp.Message = "Failed to get tools from every server"
	case len(resp.Failures) > 0:
		resp.Message = "Successfully retrieved tools; some servers could not list theirs (see failures)"
	}
	return resp, true
}

package httpapi

import (
	"encoding/json"
	"net/http"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/contracts/config"
)

// listedTool is LiteLLM's REST tool shape: the MCP tool object with
// mcp_info.server_name added.
type listedTool map[string]json.RawMessage

type mcpInfo struct {
	ServerName  string `json:"server_name"`
	Description string `json:"description,omitempty"`
}

// listResponse is LiteLLM's REST list shape. Error is null on success and
// "partial_failure" when some servers failed (Failures says which).
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

// listTools serves GET /mcp/tools/list and /mcp-rest/tools/list[?server_id=].
func (a *API) listTools(c *gin.Context) {
	p := principal(c)
	var servers []*config.Server
	if id := c.Query("server_id"); id != "" {
		srv, err := a.server(p, id)
		if err != nil {
			abortWithError(c, err)
			return
		}
		servers = []*config.Server{srv}
		logField(c, "server", id)
	} else {
		for _, name := range a.cfg.ServerNames() {
			if p.AllowsServer(name) {
				servers = append(servers, a.cfg.MCPServers[name])
			}
		}
	}

	type outcome struct {
		tools []listedTool
		err   *contracts.Error
	}
	outcomes := make([]outcome, len(servers))
	var wg sync.WaitGroup
	for i, srv := range servers {
		wg.Go(func() {
			tools, err := a.catalog.Tools(c.Request.Context(), a.listRequest(c, p, srv))
			if err != nil {
				outcomes[i].err = err
				return
			}
			info, _ := json.Marshal(mcpInfo{ServerName: srv.Name, Description: srv.Description})
			for _, t := range tools {
				if !srv.ToolAllowed(t.Name) || !p.AllowsTool(srv.Name, t.Name) {
					continue
				}
				var obj listedTool
				if json.Unmarshal(t.Raw, &obj) != nil {
					continue
				}
				obj["mcp_info"] = info
				outcomes[i].tools = append(outcomes[i].tools, obj)
			}
		})
	}
	wg.Wait()

	resp := listResponse{Tools: []listedTool{}, Message: "Successfully retrieved tools"}
	for i, o := range outcomes {
		if o.err != nil {
			resp.Failures = append(resp.Failures, serverFailure{Server: servers[i].Name, Error: o.err})
			continue
		}
		resp.Tools = append(resp.Tools, o.tools...)
	}
	switch {
	case len(servers) == 1 && len(resp.Failures) == 1:
		abortWithError(c, resp.Failures[0].Error) // one server asked for, and it failed
		return
	case len(resp.Failures) > 0:
		partial := "partial_failure"
		resp.Error = &partial
		resp.Message = "Failed to get tools from some servers"
	}
	c.JSON(http.StatusOK, resp)
}

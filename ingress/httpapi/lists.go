package httpapi

import (
	"encoding/json"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/ingress/frontdoor"
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
	id := c.Query("server_id")
	servers, err := a.policy.Servers(caller(c), id)
	if err != nil {
		abortWithError(c, err)
		return
	}
	reach := frontdoor.FanOut
	if id != "" {
		frontdoor.Of(c).Server = id
		reach = frontdoor.Targeted
	}
	resp := listResponse{Tools: []listedTool{}, Message: "Successfully retrieved tools"}
	for _, l := range a.policy.List(c.Request.Context(), caller(c), servers, reach) {
		if l.Err != nil {
			resp.Failures = append(resp.Failures, serverFailure{Server: l.Server.Name, Error: l.Err})
			continue
		}
		info, _ := json.Marshal(mcpInfo{ServerName: l.Server.Name, Description: l.Server.Description})
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
		return
	case len(resp.Failures) > 0:
		partial := "partial_failure"
		resp.Error = &partial
		resp.Message = "Failed to get tools from some servers"
	}
	c.JSON(http.StatusOK, resp)
}

package gatewaytest

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/toolbus/toolbus/contracts/contractstest"
)

// Response is an HTTP answer, read whole.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends body (JSON, if any) to url with headers, bounded by
// contractstest.WaitTimeout, and reads the answer. A "Host" entry in
// headers sets the request's Host.
func Do(t testing.TB, method, url string, headers map[string]string, body string) *Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), contractstest.WaitTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// Headers are a gateway key and, if token is set, the user's Authorization.
func Headers(key, token string) map[string]string {
	h := map[string]string{"x-litellm-key": key}
	if token != "" {
		h["Authorization"] = token
	}
	return h
}

// JSON decodes the body as a JSON object.
func (r *Response) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body is not a JSON object (%v): %s", err, r.Body)
	}
	return m
}

// ErrorCode returns error.code of a JSON error body.
func (r *Response) ErrorCode(t testing.TB) string {
	t.Helper()
	e, _ := r.JSON(t)["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// Text returns the first text content of a CallToolResult body.
func (r *Response) Text(t testing.TB) string {
	t.Helper()
	var res struct {
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
	}
	if err := json.Unmarshal(r.Body, &res); err != nil || len(res.Content) == 0 {
		t.Fatalf("not a CallToolResult with content (%v): %s", err, r.Body)
	}
	return res.Content[0].Text
}

// SSEData returns the data of each event of an SSE stream, read by a
// goroutine that ends (closing the channel) when the stream does: close the
// response body to end it.
func SSEData(stream io.Reader) <-chan string {
	out := make(chan string, 16)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(stream)
		sc.Buffer(make([]byte, 1<<20), 4<<20)
		for sc.Scan() {
			if data, found := strings.CutPrefix(sc.Text(), "data: "); found {
				out <- data
			}
		}
	}()
	return out
}

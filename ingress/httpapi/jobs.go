package httpapi

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/ingress/frontdoor"
	"github.com/toolbus/toolbus/ingress/jobs"
)

// The async API: POST /v1/calls, GET /v1/calls/{id}[?wait=], GET /v1/calls,
// DELETE /v1/calls/{id}.

const defaultListLimit = 20

// jobView is a job as the API shows it.
type jobView struct {
	ID         string                 `json:"id"`
	Server     string                 `json:"server"`
	Tool       string                 `json:"tool"`
	Status     contracts.JobStatus    `json:"status"`
	CreatedAt  time.Time              `json:"created_at"`
	StartedAt  *time.Time             `json:"started_at"`
	FinishedAt *time.Time             `json:"finished_at"`
	Attempts   int                    `json:"attempts"`
	Progress   *contracts.JobProgress `json:"progress"`
	Result     json.RawMessage        `json:"result,omitempty"`
	Error      *contracts.Error       `json:"error,omitempty"`
	// LastError is the failure of the previous attempt of a job that is
	// queued again for a retry.
	LastError *contracts.Error `json:"last_error,omitempty"`
	StatusURL string           `json:"status_url"`
}

func statusURL(id string) string { return "/v1/calls/" + id }

func newJobView(rec *contracts.JobRecord) *jobView {
	v := &jobView{
		ID: rec.ID, Server: rec.Server, Tool: rec.Tool, Status: rec.Status, CreatedAt: rec.CreatedAt,
		StartedAt: rec.StartedAt, FinishedAt: rec.FinishedAt, Attempts: rec.Attempts, Progress: rec.Progress,
		StatusURL: statusURL(rec.ID),
	}
	if rec.Status.Terminal() {
		v.Error = rec.Error
	} else {
		v.LastError = rec.Error
	}
	return v
}

// owner is the caller as a job owner (frontdoor.Caller.Owner).
func owner(c *gin.Context) string { return caller(c).Owner() }

// submitCall serves POST /v1/calls.
func (a *API) submitCall(c *gin.Context) {
	if plan, ok := a.prepareCall(c); ok {
		a.submit(c, plan)
	}
}

// submit turns a prepared call into a job: 202 with its id and status URL.
func (a *API) submit(c *gin.Context, plan callPlan) {
	rec, existed, err := a.jobs.Submit(c.Request.Context(), plan.call.Submission(plan.args, c.GetHeader("Idempotency-Key")))
	if err != nil {
		abortWithError(c, err)
		return
	}
	frontdoor.Of(c).JobID = rec.ID
	if existed {
		c.Header("Idempotent-Replayed", "true")
	}
	c.Header("Location", statusURL(rec.ID))
	c.JSON(http.StatusAccepted, gin.H{"id": rec.ID, "status": rec.Status, "status_url": statusURL(rec.ID)})
}

// getCall serves GET /v1/calls/{id}[?wait=30s].
func (a *API) getCall(c *gin.Context) {
	wait, err := a.parseWait(c.Query("wait"))
	if err != nil {
		abortWithError(c, err)
		return
	}
	id := c.Param("id")
	frontdoor.Of(c).JobID = id
	if wait > 0 {
		// A long poll holds one of the key's stream slots while it waits.
		release, err := a.limits.Stream(caller(c).Key.Name, caller(c).Key.Limits, caller(c).Key.IdentityLimits, owner(c))
		if err != nil {
			abortWithError(c, err)
			return
		}
		defer release()
	}
	rec, err := a.jobs.Wait(c.Request.Context(), owner(c), id, wait)
	if err != nil {
		abortWithError(c, err)
		return
	}
	v := newJobView(rec)
	if rec.Status == contracts.JobSucceeded && rec.ResultObject != "" {
		a.streamJob(c, v, rec)
		return
	}
	if rec.Status == contracts.JobSucceeded && len(rec.Result) > 0 {
		// The result is spliced in as it is, not encoded again: it is
		// valid JSON, which the worker wrote into the job record.
		head, _ := json.Marshal(v) // without the result: {...}
		body := make([]byte, 0, len(head)+len(rec.Result)+16)
		body = append(append(body, head[:len(head)-1]...), `,"result":`...)
		body = append(append(body, rec.Result...), '}')
		writeJSON(c, http.StatusOK, body)
		return
	}
	c.JSON(http.StatusOK, v)
}

// streamJob writes the job view v with its result copied from the object
// store as it arrives: the ingress never holds a large result whole, nor
// encodes it again.
func (a *API) streamJob(c *gin.Context, v *jobView, rec *contracts.JobRecord) {
	r, size, err := a.jobs.OpenResult(c.Request.Context(), rec)
	if err != nil {
		abortWithError(c, err)
		return
	}
	defer r.Close()
	head, _ := json.Marshal(v) // without the result: {...}
	head = append(head[:len(head)-1], `,"result":`...)
	c.Header("Content-Type", "application/json; charset=utf-8")
	c.Header("Content-Length", strconv.FormatInt(int64(len(head))+size+1, 10))
	c.Status(http.StatusOK)
	if _, werr := c.Writer.Write(head); werr != nil {
		return
	}
	if _, cerr := io.Copy(c.Writer, r); cerr != nil {
		// The status is sent: the client sees a short body and the
		// connection closed.
		a.log.Warn().Str("job_id", rec.ID).Str("error", cerr.Error()).Msg("job result not fully sent")
		return
	}
	_, _ = c.Writer.Write([]byte{'}'})
}

// parseWait reads ?wait= as a Go duration or seconds, bounded by jobs.max_wait.
func (a *API) parseWait(s string) (time.Duration, *contracts.Error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		secs, serr := strconv.ParseFloat(s, 64)
		if serr != nil {
			return 0, contracts.NewError(contracts.CodeInvalidRequest, "wait must be a duration such as 30s")
		}
		d = time.Duration(secs * float64(time.Second))
	}
	if d < 0 {
		return 0, contracts.NewError(contracts.CodeInvalidRequest, "wait must not be negative")
	}
	return min(d, a.cfg.Jobs.MaxWait.D()), nil
}

// listCalls serves GET /v1/calls?status=&limit=&cursor=.
func (a *API) listCalls(c *gin.Context) {
	status := contracts.JobStatus(c.Query("status"))
	if status != "" && !status.Valid() {
		abortWithError(c, contracts.NewError(contracts.CodeInvalidRequest, "status must be one of queued, running, succeeded, failed, cancelled, expired"))
		return
	}
	limit := defaultListLimit
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > jobs.MaxListLimit {
			abortWithError(c, contracts.NewError(contracts.CodeInvalidRequest, "limit must be 1 to %d", jobs.MaxListLimit))
			return
		}
		limit = n
	}
	cursor := c.Query("cursor")
	if cursor != "" && !contracts.ValidJobID(cursor) {
		abortWithError(c, contracts.NewError(contracts.CodeInvalidRequest, "cursor is not a job id"))
		return
	}
	recs, next, err := a.jobs.List(c.Request.Context(), owner(c), status, limit, cursor)
	if err != nil {
		abortWithError(c, err)
		return
	}
	views := make([]*jobView, 0, len(recs))
	for _, rec := range recs {
		views = append(views, newJobView(rec))
	}
	c.JSON(http.StatusOK, gin.H{"calls": views, "next_cursor": next})
}

// cancelCall serves DELETE /v1/calls/{id}.
func (a *API) cancelCall(c *gin.Context) {
	id := c.Param("id")
	frontdoor.Of(c).JobID = id
	rec, err := a.jobs.Cancel(c.Request.Context(), owner(c), id)
	if err != nil {
		abortWithError(c, err)
		return
	}
	c.JSON(http.StatusOK, newJobView(rec))
}

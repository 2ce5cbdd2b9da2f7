package bench

// The coordinator's HTTP API, used by `airlock bench agent`. Every call
// is JSON; the long polls (ready, batch) answer when every agent is there,
// or with Abort set when the run is called off.
const (
	pathJoin     = "/v1/join"     // POST joinRequest → joinReply
	pathTime     = "/v1/time"     // GET → timeReply: the coordinator's clock
	pathReady    = "/v1/ready"    // POST readyRequest → readyReply (long poll: the start barrier)
	pathBatch    = "/v1/batch"    // POST batchRequest → abortReply (long poll: a rolling batch is done everywhere)
	pathProgress = "/v1/progress" // POST progressRequest → 204
	pathResult   = "/v1/result"   // POST resultRequest → 204
)

// joinRequest introduces an agent.
type joinRequest struct {
	Name  string `json:"name"`  // host name
	Index int    `json:"index"` // the slice it asks for (an Indexed Job's completion index), -1 for any
}

// joinReply gives the agent its slice and the plan.
type joinReply struct {
	Agent  int       `json:"agent"`
	Agents int       `json:"agents"`
	Plan   agentPlan `json:"plan"`
}

// timeReply is the coordinator's clock, Unix nanoseconds.
type timeReply struct {
	UnixNano int64 `json:"unixNano"`
}

// readyRequest says an agent is ready for a step (or could not get ready).
type readyRequest struct {
	Agent        int     `json:"agent"`
	Step         int     `json:"step"`
	ClockOffsetS float64 `json:"clockOffsetS"`
	ClockRTTS    float64 `json:"clockRttS"`
	Error        string  `json:"error,omitempty"`
}

// readyReply starts a step at StartUnixNano (the coordinator's clock), or
// says there is nothing left (Done) or the run was called off (Abort).
type readyReply struct {
	StartUnixNano int64  `json:"startUnixNano,omitempty"`
	Done          bool   `json:"done,omitempty"`
	Abort         string `json:"abort,omitempty"`
}

// batchRequest says an agent finished its nodes of a rolling batch.
type batchRequest struct {
	Agent int `json:"agent"`
	Step  int `json:"step"`
	Batch int `json:"batch"`
}

// abortReply answers a long poll; Abort is set when the run is called off.
type abortReply struct {
	Abort string `json:"abort,omitempty"`
}

// progressRequest is an agent's progress in a step.
type progressRequest struct {
	Agent   int `json:"agent"`
	Step    int `json:"step"`
	Done    int `json:"done"`
	Running int `json:"running"`
	Failed  int `json:"failed"`
}

// resultRequest is an agent's report of a step, or why it has none.
type resultRequest struct {
	Agent  int         `json:"agent"`
	Step   int         `json:"step"`
	Report agentReport `json:"report"`
	Error  string      `json:"error,omitempty"`
}

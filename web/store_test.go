package web_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/web"
)

// TestStoreConditionShows feeds the server the counters the dispatcher's
// and the reporter's shells set while their store refuses writes, and
// checks the dashboard (page and live stream) and /api/v1/status show it,
// and that it goes away once the store works again.
func TestStoreConditionShows(t *testing.T) {
	rep := &fakeDispatcher{status: &messages.StatusReply{Role: "reporter", Counters: map[string]int64{web.CounterStoreFailing: 1, web.CounterStoreWriteErrors: 2}}}
	f := startCfg(t, web.Config{Reporter: rep})
	st := baseStatus()
	st.Counters[web.CounterStoreFailing], st.Counters[web.CounterStoreWriteErrors] = 1, 5
	f.disp.setStatus(st)

	const dispLine, repLine = "dispatcher store: failing — writes refused (5 errors); retrying", "reporter store: failing — writes refused (2 errors); retrying"
	_, body, _ := f.do(t, "GET", "/", nil, "")
	assert.Contains(t, body, `<p class="bad store-failing" role="alert">`+dispLine+`</p>`)
	assert.Contains(t, body, repLine)
	_, body, _ = f.do(t, "GET", "/api/v1/status", nil, "")
	assert.Contains(t, body, `"stores": [`)
	assert.Contains(t, body, `"`+dispLine+`"`)
	assert.Contains(t, body, `"store_write_errors": 5`)

	// The dispatcher unreachable: the reporter's store still shows.
	f.disp.mu.Lock()
	f.disp.down = true
	f.disp.mu.Unlock()
	_, body, _ = f.do(t, "GET", "/", nil, "")
	assert.Contains(t, body, "dispatcher unreachable")
	assert.Contains(t, body, repLine)

	// Both recover: the live dashboard drops the alarm.
	f.disp.mu.Lock()
	f.disp.down = false
	f.disp.mu.Unlock()
	st = baseStatus()
	st.Counters[web.CounterStoreFailing], st.Counters[web.CounterStoreWriteErrors] = 0, 5
	f.disp.setStatus(st)
	rep.setStatus(&messages.StatusReply{Role: "reporter", Counters: map[string]int64{web.CounterStoreFailing: 0, web.CounterStoreWriteErrors: 2}})
	events(t, f, "/events", 10*time.Second, func(event, data string) bool {
		return !strings.Contains(data, "store-failing") && strings.Contains(data, "store_write_errors: 5")
	})
	_, body, _ = f.do(t, "GET", "/api/v1/status", nil, "")
	assert.NotContains(t, body, `"stores"`)
}

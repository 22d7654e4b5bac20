package status

import (
	"context"
	"fmt"
	"io"

	"github.com/leaderd/leaderd/consulhttp"
	"github.com/leaderd/leaderd/elect"
)

// ListKV and TxnKV: the registry, acquires and handovers, and Slots.
func (c MeteredConsul) ListKV(ctx context.Context, prefix string, q consulhttp.QueryOptions) ([]consulhttp.KVPair, consulhttp.QueryMeta, error) {
	ps, meta, err := c.Consul.ListKV(ctx, prefix, q)
	c.Metrics.consulError(err)
	return ps, meta, err
}

func (c MeteredConsul) TxnKV(ctx context.Context, ops []consulhttp.TxnKVOp) ([]consulhttp.KVPair, bool, error) {
	res, ok, err := c.Consul.TxnKV(ctx, ops)
	c.Metrics.consulError(err)
	return res, ok, err
}

// slotsView is the "slots" object of /v1/status with -n N.
type slotsView struct {
	Limit   int            `json:"limit"`
	Holders []elect.Holder `json:"holders"`
}

func slotsViewOf(s *elect.Slots) *slotsView {
	if s == nil {
		return nil
	}
	return &slotsView{Limit: s.Limit(), Holders: s.Holders()}
}

// writeSlotsMetrics adds the slot gauges to /metrics with -n N.
func writeSlotsMetrics(w io.Writer, s *elect.Slots) {
	if s == nil {
		return
	}
	live := 0
	for _, h := range s.Holders() {
		if h.Live {
			live++
		}
	}
	fmt.Fprintf(w, "# HELP leaderd_slots_limit Slots of the semaphore (-n).\n# TYPE leaderd_slots_limit gauge\nleaderd_slots_limit %d\n", s.Limit())
	fmt.Fprintf(w, "# HELP leaderd_slots_holders Holders in the semaphore's .lock as last seen, live or not yet pruned.\n# TYPE leaderd_slots_holders gauge\nleaderd_slots_holders %d\n", len(s.Holders()))
	fmt.Fprintf(w, "# HELP leaderd_slots_live_holders Holders whose contender key is held by their session.\n# TYPE leaderd_slots_live_holders gauge\nleaderd_slots_live_holders %d\n", live)
}

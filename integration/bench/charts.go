package main

import (
	"fmt"
	"math"
	"slices"
)

// colourOf picks a flavor's colour.
func colourOf(tool, name string) string {
	switch {
	case tool == toolConsulLock:
		return colConsul
	case name == leaderdFast.Name:
		return colLeaderdFast
	}
	return colLeaderd
}

// medianRun returns the run with the median failover (nearest rank).
func medianRun(runs []CrashRun) (CrashRun, bool) {
	if len(runs) == 0 {
		return CrashRun{}, false
	}
	s := slices.Clone(runs)
	slices.SortFunc(s, func(a, b CrashRun) int { return cmpFloat(a.Failover, b.Failover) })
	return s[(len(s)-1)/2], true
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// timelineSVG draws the median crash run of each configuration on one time
// axis: who ran the child when, the SIGKILL, and the leaderless gap.
func timelineSVG(r *Results) string {
	type panel struct {
		cs  CrashSeries
		run CrashRun
	}
	var panels []panel
	end := 10.0
	for _, cs := range r.Crash {
		if run, ok := medianRun(cs.Runs); ok {
			panels = append(panels, panel{cs, run})
			end = max(end, run.Failover/1000+3)
		}
	}
	end = math.Ceil((end+2)/5) * 5
	const left, right, top, laneH, lanes, panelGap = 120.0, 30.0, 76.0, 18.0, 3, 34.0
	width := 920.0
	height := top + float64(len(panels))*(lanes*laneH+panelGap) + 50
	s := newSVG(width, height, "Crash failover: the leader is SIGKILLed at 0 s")
	x := axis{lo: -3, hi: end, from: left, to: width - right}
	s.text(16, 22, "start", `font-size="15" font-weight="600" fill="`+colText+`"`,
		"Crash failover: the leader is SIGKILLed at 0 s; bars show whose child runs")
	s.text(16, 40, "start", `fill="`+colMuted+`"`,
		"The median run of each configuration, on one time axis; shaded: no leader.")
	axisY := height - 44
	for _, t := range niceTicks(-3, end, 10) {
		s.line(x.at(t), top-6, x.at(t), axisY, `stroke="`+colGrid+`"`)
		s.text(x.at(t), axisY+14, "middle", `fill="`+colMuted+`"`, fmtTick(t)+" s")
	}
	y := top
	for _, p := range panels {
		col := colourOf(p.cs.Tool, p.cs.Name)
		ph := lanes * laneH
		gapEnd := p.run.Failover / 1000
		s.rect(x.at(0), y, x.at(gapEnd)-x.at(0), ph, `fill="#fed7d7" fill-opacity="0.6"`)
		s.text(left, y-6, "start", `font-weight="600" fill="`+colText+`"`, p.cs.Name)
		label := fmt.Sprintf("no leader for %.1f s", gapEnd)
		if p.run.OldChildAlive {
			label = fmt.Sprintf("new leader after %.1f s, while the old child still ran", gapEnd)
		}
		s.text(left+float64(len(p.cs.Name))*7.4+12, y-6, "start", `fill="`+colGap+`"`, label)
		for lane := range lanes {
			s.text(left-8, y+float64(lane)*laneH+13, "end", `fill="`+colMuted+`"`, fmt.Sprintf("candidate %d", lane+1))
		}
		for _, iv := range p.run.Timeline {
			if iv.Slot < 0 || iv.Slot >= lanes {
				continue
			}
			a, b := max(iv.Start, -3), min(iv.End, end)
			if b <= a {
				continue
			}
			fill := col
			if iv.How == "orphan" {
				fill = colGap
			}
			s.rect(x.at(a), y+float64(iv.Slot)*laneH+3, max(x.at(b)-x.at(a), 1.5), laneH-6, `rx="2" fill="`+fill+`"`)
			if iv.How == "orphan" {
				s.text(x.at(a)+4, y+float64(iv.Slot)*laneH+laneH-5, "start", `font-size="10" fill="#ffffff"`,
					"old child outlived its consul lock: two leaders")
			}
		}
		s.line(x.at(0), y-2, x.at(0), y+ph+2, `stroke="`+colGap+`" stroke-width="2" stroke-dasharray="4 2"`)
		y += ph + panelGap
	}
	s.text(x.at(0), axisY+28, "middle", `font-size="11" fill="`+colGap+`"`, "SIGKILL")
	return s.String()
}

// handoverSVG draws every graceful handover as a dot, one row per tool and
// trigger, with the median marked.
func handoverSVG(r *Results) string {
	const left, right, top, rowH = 250.0, 30.0, 50.0, 46.0
	width := 920.0
	height := top + float64(len(r.Handover))*rowH + 40
	s := newSVG(width, height, "Graceful handover latency")
	hi := 1.0
	for _, h := range r.Handover {
		hi = max(hi, maxOf(h.Latencies))
	}
	hi = niceCeil(hi)
	x := axis{lo: 0, hi: hi, from: left, to: width - right}
	s.text(16, 22, "start", `font-size="15" font-weight="600" fill="`+colText+`"`,
		"Graceful handover: old child's last line to new child's first line (each dot one handover, bar = p50)")
	axisY := top + float64(len(r.Handover))*rowH
	for _, t := range niceTicks(0, hi, 10) {
		s.line(x.at(t), top-8, x.at(t), axisY, `stroke="`+colGrid+`"`)
		s.text(x.at(t), axisY+14, "middle", `fill="`+colMuted+`"`, fmtTick(t)+" ms")
	}
	for i, h := range r.Handover {
		y := top + float64(i)*rowH
		col := colourOf(h.Tool, "")
		s.text(left-10, y+rowH/2, "end", `fill="`+colText+`"`, h.Tool+": "+h.Mode)
		s.text(left-10, y+rowH/2+14, "end", `font-size="11" fill="`+colMuted+`"`,
			fmt.Sprintf("p50 %.1f ms · p99 %.1f ms · n=%d", median(h.Latencies), percentile(h.Latencies, 99), len(h.Latencies)))
		for j, v := range h.Latencies {
			jitter := math.Mod(float64(j)*0.618034, 1)*(rowH-18) + 9
			s.circle(x.at(v), y+jitter, 3, `fill="`+col+`" fill-opacity="0.55"`)
		}
		m := x.at(median(h.Latencies))
		s.line(m, y+4, m, y+rowH-4, `stroke="`+colText+`" stroke-width="2.5"`)
	}
	return s.String()
}

// niceCeil rounds v up to a round number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6
// or 8 times a power of ten), so an axis ends just past the data.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10} {
		if m*mag >= v {
			return m * mag
		}
	}
	return 10 * mag
}

// scaleSVG draws handover latency (left) and Consul requests per handover
// (right) against the number of candidates on one key.
func scaleSVG(r *Results) string {
	width, height := 920.0, 380.0
	s := newSVG(width, height, "Handover with many candidates")
	s.text(16, 22, "start", `font-size="15" font-weight="600" fill="`+colText+`"`,
		"Handover with N candidates on one key (the leader's child exits; processes on one 2-core machine)")
	byTool := map[string][]ScalePoint{}
	var ns []float64
	points := r.Scale
	// The 3-candidate graceful handovers were measured the same way.
	for _, h := range r.Handover {
		if h.Mode == modeChildExit {
			points = append([]ScalePoint{{Tool: h.Tool, N: 3, Latencies: h.Latencies, Requests: h.Requests, RequestKinds: h.RequestKinds}}, points...)
		}
	}
	for _, p := range points {
		if p.Skipped == "" && len(p.Latencies) > 0 {
			byTool[p.Tool] = append(byTool[p.Tool], p)
			if !slices.Contains(ns, float64(p.N)) {
				ns = append(ns, float64(p.N))
			}
		}
	}
	if len(ns) == 0 {
		return s.String()
	}
	slices.Sort(ns)
	lo, hiN := ns[0], ns[len(ns)-1]
	if hiN == lo {
		hiN = lo * 10
	}
	type chart struct {
		title string
		unit  string
		val   func(ScalePoint) (mid, top float64)
		left  float64
	}
	charts := []chart{
		{"handover latency: p50, whisker to p99", " ms", func(p ScalePoint) (float64, float64) {
			return median(p.Latencies), percentile(p.Latencies, 99)
		}, 60},
		{"writes to Consul per handover (mean)", "", func(p ScalePoint) (float64, float64) {
			m, _ := p.split()
			return m, m
		}, 370},
		{"reads per handover (mean)", "", func(p ScalePoint) (float64, float64) {
			_, m := p.split()
			return m, m
		}, 680},
	}
	for _, c := range charts {
		top, bottom, cw := 60.0, height-60, 220.0
		yhi := 1.0
		for _, pts := range byTool {
			for _, p := range pts {
				_, t := c.val(p)
				yhi = max(yhi, t)
			}
		}
		yhi = niceCeil(yhi)
		x := axis{lo: lo / 1.4, hi: hiN * 1.4, from: c.left, to: c.left + cw, log: true}
		y := axis{lo: 0, hi: yhi, from: bottom, to: top}
		s.text(c.left, top-16, "start", `font-weight="600" fill="`+colText+`"`, c.title)
		for _, t := range niceTicks(0, yhi, 5) {
			s.line(c.left, y.at(t), c.left+cw, y.at(t), `stroke="`+colGrid+`"`)
			s.text(c.left-6, y.at(t)+4, "end", `fill="`+colMuted+`"`, fmtTick(t)+c.unit)
		}
		for _, n := range ns {
			s.text(x.at(n), bottom+16, "middle", `fill="`+colMuted+`"`, fmtTick(n))
		}
		s.text(c.left+cw/2, bottom+34, "middle", `fill="`+colMuted+`"`, "candidates (log scale)")
		for _, tool := range []string{toolLeaderd, toolConsulLock} {
			pts := byTool[tool]
			col := colourOf(tool, "")
			var xs, ys []float64
			for _, p := range pts {
				mid, t := c.val(p)
				px := x.at(float64(p.N))
				xs, ys = append(xs, px), append(ys, y.at(mid))
				if t != mid {
					s.line(px, y.at(mid), px, y.at(t), `stroke="`+col+`" stroke-width="1.5"`)
					s.line(px-4, y.at(t), px+4, y.at(t), `stroke="`+col+`" stroke-width="1.5"`)
				}
				s.circle(px, y.at(mid), 4, `fill="`+col+`"`)
			}
			s.polyline(xs, ys, `stroke="`+col+`" stroke-width="2"`)
		}
	}
	// Legend.
	for i, tool := range []string{toolLeaderd, toolConsulLock} {
		lx := 70 + float64(i)*140
		s.rect(lx, height-18, 14, 4, `fill="`+colourOf(tool, "")+`"`)
		s.text(lx+20, height-13, "start", `fill="`+colText+`"`, tool)
	}
	return s.String()
}

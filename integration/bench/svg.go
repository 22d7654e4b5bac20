package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// svg builds an SVG document with the standard library: a few shapes, text
// and a linear or logarithmic axis. Numbers are rounded to 0.1 px so the
// files diff well between runs.
type svg struct {
	b    strings.Builder
	w, h float64
}

const svgFont = `font-family="-apple-system,BlinkMacSystemFont,Segoe UI,Helvetica,Arial,sans-serif"`

func newSVG(w, h float64, title string) *svg {
	s := &svg{w: w, h: h}
	fmt.Fprintf(&s.b, `<svg xmlns="http://www.w3.org/2000/svg" width="%s" height="%s" viewBox="0 0 %s %s" %s font-size="12">`+"\n",
		num(w), num(h), num(w), num(h), svgFont)
	fmt.Fprintf(&s.b, "<title>%s</title>\n", html.EscapeString(title))
	s.rect(0, 0, w, h, `fill="#ffffff"`)
	return s
}

// num formats a coordinate: at most one decimal, no trailing zeros.
func num(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "0"
	}
	s := fmt.Sprintf("%.1f", v)
	s = strings.TrimSuffix(s, ".0")
	if s == "-0" {
		s = "0"
	}
	return s
}

func (s *svg) rect(x, y, w, h float64, attrs string) {
	fmt.Fprintf(&s.b, `<rect x="%s" y="%s" width="%s" height="%s" %s/>`+"\n", num(x), num(y), num(max(w, 0)), num(max(h, 0)), attrs)
}

func (s *svg) line(x1, y1, x2, y2 float64, attrs string) {
	fmt.Fprintf(&s.b, `<line x1="%s" y1="%s" x2="%s" y2="%s" %s/>`+"\n", num(x1), num(y1), num(x2), num(y2), attrs)
}

func (s *svg) circle(cx, cy, r float64, attrs string) {
	fmt.Fprintf(&s.b, `<circle cx="%s" cy="%s" r="%s" %s/>`+"\n", num(cx), num(cy), num(r), attrs)
}

func (s *svg) polyline(xs, ys []float64, attrs string) {
	var pts []string
	for i := range xs {
		pts = append(pts, num(xs[i])+","+num(ys[i]))
	}
	fmt.Fprintf(&s.b, `<polyline points="%s" fill="none" %s/>`+"\n", strings.Join(pts, " "), attrs)
}

// text writes an escaped label; anchor is start, middle or end.
func (s *svg) text(x, y float64, anchor, attrs, label string) {
	fmt.Fprintf(&s.b, `<text x="%s" y="%s" text-anchor="%s" %s>%s</text>`+"\n", num(x), num(y), anchor, attrs, html.EscapeString(label))
}

func (s *svg) String() string { return s.b.String() + "</svg>\n" }

// axis maps data values to pixels, linearly or on a log10 scale.
type axis struct {
	lo, hi   float64 // data range
	from, to float64 // pixel range
	log      bool
}

func (a axis) at(v float64) float64 {
	lo, hi := a.lo, a.hi
	if a.log {
		v, lo, hi = math.Log10(v), math.Log10(lo), math.Log10(hi)
	}
	if hi == lo {
		return a.from
	}
	return a.from + (v-lo)/(hi-lo)*(a.to-a.from)
}

// niceTicks returns about n round tick values covering [lo, hi] (1, 2 or 5
// times a power of ten apart).
func niceTicks(lo, hi float64, n int) []float64 {
	if hi <= lo || n < 1 {
		return []float64{lo}
	}
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var ticks []float64
	for v := math.Ceil(lo/step) * step; v <= hi+step*1e-9; v += step {
		ticks = append(ticks, math.Round(v/step)*step)
	}
	return ticks
}

// fmtTick prints a tick value without noise: 0.5, 2, 100, 1k.
func fmtTick(v float64) string {
	if v == 0 {
		return "0" // not "-0"
	}
	switch {
	case v >= 1000 && math.Mod(v, 1000) == 0:
		return fmt.Sprintf("%gk", v/1000)
	default:
		return fmt.Sprintf("%g", math.Round(v*1000)/1000)
	}
}

// Colours: one per tool, the same in every chart.
const (
	colLeaderd     = "#2b6cb0"
	colLeaderdFast = "#38a169"
	colConsul      = "#c05621"
	colGap         = "#e53e3e"
	colGrid        = "#e2e8f0"
	colText        = "#1a202c"
	colMuted       = "#718096"
)

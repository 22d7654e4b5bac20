package jobspec

// A strict parser for the subset of HCL2 native syntax that leaderd's
// jobspecs use, so tests can check that the HCL parses and compare it with
// the JSON form without a dependency on github.com/hashicorp/hcl/v2 (the
// house rules allow no module beyond nomad/api and go-cmp, and hcl/v2 would
// bring go-cty and half a dozen more into go.sum). It accepts: blocks with
// quoted labels, attributes whose values are strings, numbers, booleans,
// lists (trailing comma allowed) and <<-EOT heredocs; #, // and /* */
// comments. Anything else is an error with its line number, so a template
// change that produces HCL outside this subset fails the tests instead of
// passing unchecked. Like Nomad's HCL2 parsing, ${…} inside strings is kept
// for run-time interpolation; $${ and %%{ are the escapes for ${ and %{, and
// a bare %{ (a template directive) is rejected.

import (
	"fmt"
	"strconv"
	"strings"
)

type hclBlock struct {
	Type   string
	Labels []string
	Attrs  map[string]any // string, int, bool, []any
	Blocks []*hclBlock
	Line   int
}

func (b *hclBlock) all(typ string) []*hclBlock {
	var out []*hclBlock
	for _, c := range b.Blocks {
		if c.Type == typ {
			out = append(out, c)
		}
	}
	return out
}

func (b *hclBlock) one(typ string) *hclBlock {
	if bs := b.all(typ); len(bs) == 1 {
		return bs[0]
	}
	return nil
}

type hclParser struct {
	src  string
	pos  int
	line int
}

func parseHCL(src string) (*hclBlock, error) {
	p := &hclParser{src: src, line: 1}
	root := &hclBlock{Attrs: map[string]any{}}
	if err := p.body(root, false); err != nil {
		return nil, err
	}
	return root, nil
}

func (p *hclParser) errf(format string, a ...any) error {
	return fmt.Errorf("line %d: %s", p.line, fmt.Sprintf(format, a...))
}

func (p *hclParser) peek() byte {
	if p.pos < len(p.src) {
		return p.src[p.pos]
	}
	return 0
}

// space skips blanks and comments; newlines too when nl.
func (p *hclParser) space(nl bool) {
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\r':
			p.pos++
		case c == '\n' && nl:
			p.pos++
			p.line++
		case c == '#' || strings.HasPrefix(p.src[p.pos:], "//"):
			for p.pos < len(p.src) && p.src[p.pos] != '\n' {
				p.pos++
			}
		case strings.HasPrefix(p.src[p.pos:], "/*"):
			end := strings.Index(p.src[p.pos:], "*/")
			if end < 0 {
				p.pos = len(p.src)
				return
			}
			p.line += strings.Count(p.src[p.pos:p.pos+end], "\n")
			p.pos += end + 2
		default:
			return
		}
	}
}

func isIdent(c byte, first bool) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && (c == '-' || c >= '0' && c <= '9')
}

func (p *hclParser) ident() string {
	start := p.pos
	for p.pos < len(p.src) && isIdent(p.src[p.pos], p.pos == start) {
		p.pos++
	}
	return p.src[start:p.pos]
}

// body parses items until EOF (top level) or a closing brace.
func (p *hclParser) body(b *hclBlock, nested bool) error {
	for {
		p.space(true)
		switch c := p.peek(); {
		case c == 0:
			if nested {
				return p.errf("unexpected end of file in block %s", b.Type)
			}
			return nil
		case c == '}':
			if !nested {
				return p.errf("unexpected }")
			}
			p.pos++
			return nil
		}
		line := p.line
		name := p.ident()
		if name == "" {
			return p.errf("expected an attribute or block name, got %q", p.peek())
		}
		p.space(false)
		if p.peek() == '=' {
			p.pos++
			p.space(false)
			v, err := p.value()
			if err != nil {
				return err
			}
			if _, dup := b.Attrs[name]; dup {
				return p.errf("attribute %s set twice", name)
			}
			b.Attrs[name] = v
			if err := p.endOfItem(); err != nil {
				return err
			}
			continue
		}
		blk := &hclBlock{Type: name, Attrs: map[string]any{}, Line: line}
		for p.peek() == '"' {
			l, err := p.str()
			if err != nil {
				return err
			}
			blk.Labels = append(blk.Labels, l)
			p.space(false)
		}
		if p.peek() != '{' {
			return p.errf("block %s: expected {, got %q", name, p.peek())
		}
		p.pos++
		if err := p.body(blk, true); err != nil {
			return err
		}
		b.Blocks = append(b.Blocks, blk)
		if err := p.endOfItem(); err != nil {
			return err
		}
	}
}

// endOfItem requires a newline (or a closing brace / EOF) after an item.
func (p *hclParser) endOfItem() error {
	p.space(false)
	switch p.peek() {
	case '\n':
		return nil
	case '}', 0:
		return nil
	}
	return p.errf("expected a newline, got %q", p.peek())
}

func (p *hclParser) value() (any, error) {
	switch c := p.peek(); {
	case c == '"':
		return p.str()
	case c == '[':
		return p.list()
	case strings.HasPrefix(p.src[p.pos:], "<<-"):
		return p.heredoc()
	case c >= '0' && c <= '9':
		start := p.pos
		for p.pos < len(p.src) && p.src[p.pos] >= '0' && p.src[p.pos] <= '9' {
			p.pos++
		}
		return strconv.Atoi(p.src[start:p.pos])
	default:
		switch id := p.ident(); id {
		case "true":
			return true, nil
		case "false":
			return false, nil
		default:
			return nil, p.errf("unsupported expression starting %q", id+string(p.peek()))
		}
	}
}

func (p *hclParser) list() ([]any, error) {
	p.pos++ // [
	out := []any{}
	for {
		p.space(true)
		if p.peek() == ']' {
			p.pos++
			return out, nil
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		p.space(true)
		switch p.peek() {
		case ',':
			p.pos++
		case ']':
		default:
			return nil, p.errf("list: expected , or ], got %q", p.peek())
		}
	}
}

func (p *hclParser) str() (string, error) {
	p.pos++ // opening quote
	var b strings.Builder
	for {
		if p.pos >= len(p.src) || p.src[p.pos] == '\n' {
			return "", p.errf("unterminated string")
		}
		c := p.src[p.pos]
		rest := p.src[p.pos:]
		switch {
		case c == '"':
			p.pos++
			return b.String(), nil
		case c == '\\':
			if p.pos+1 >= len(p.src) {
				return "", p.errf("bad escape")
			}
			e, ok := map[byte]string{'"': `"`, '\\': `\`, 'n': "\n", 'r': "\r", 't': "\t"}[p.src[p.pos+1]]
			if !ok {
				return "", p.errf("unsupported escape \\%c", p.src[p.pos+1])
			}
			b.WriteString(e)
			p.pos += 2
		case strings.HasPrefix(rest, "$${"), strings.HasPrefix(rest, "%%{"):
			b.WriteString(rest[1:3])
			p.pos += 3
		case strings.HasPrefix(rest, "%{"):
			return "", p.errf("template directive %%{ in a string")
		default:
			b.WriteByte(c)
			p.pos++
		}
	}
}

// heredoc parses <<-MARK … MARK: the lines, minus their common leading
// spaces, each followed by a newline.
func (p *hclParser) heredoc() (string, error) {
	p.pos += 3
	mark := p.ident()
	if mark == "" || p.peek() != '\n' {
		return "", p.errf("heredoc: expected a marker and a newline")
	}
	p.pos++
	p.line++
	var lines []string
	for {
		end := strings.IndexByte(p.src[p.pos:], '\n')
		if end < 0 {
			return "", p.errf("heredoc %s not closed", mark)
		}
		l := p.src[p.pos : p.pos+end]
		if strings.TrimSpace(l) == mark {
			p.pos += len(l) // leave the newline for endOfItem
			break
		}
		if strings.Contains(l, "%{") || strings.Contains(l, "${") {
			return "", p.errf("heredoc line interpolates: %q", l)
		}
		lines = append(lines, l)
		p.pos += end + 1
		p.line++
	}
	indent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " "))
		if indent < 0 || n < indent {
			indent = n
		}
	}
	var b strings.Builder
	for _, l := range lines {
		if len(l) >= indent && indent > 0 {
			l = l[indent:]
		}
		b.WriteString(l + "\n")
	}
	return b.String(), nil
}

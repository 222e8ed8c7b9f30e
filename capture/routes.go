package capture

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Routes is a table of template URIs that request paths are matched against,
// segment by segment: a segment {name} matches any one non-empty segment, a
// last segment {name...} matches the rest of the path, and any other segment
// matches itself. When several templates match a path, the most specific
// wins: at the first segment where they differ, a literal beats a segment
// with a parameter in it (such as {id}.json), which beats a whole-segment
// parameter — the precedence http.ServeMux gives its patterns.
//
// A Routes is immutable once built, and safe for concurrent use.
type Routes struct {
	root node
	n    int
}

// node is one segment position of the route trie. Each kind of child is
// tried in order of specificity, backtracking when a branch fails deeper, so
// that the first full match found is the most specific one.
type node struct {
	literal map[string]*node
	// few holds the literal children while they are few: comparing a
	// handful of strings is cheaper than hashing one.
	few      []literalChild
	partial  []*partialChild
	param    *node
	rest     string // template of a {name...} child, if any
	template string // template ending here, if any
}

type literalChild struct {
	seg  string
	next *node
}

// maxFew is the most literal children kept in a slice rather than a map.
const maxFew = 8

// child returns the literal child for a segment, or nil.
func (n *node) child(seg string) *node {
	if n.literal == nil {
		for i := range n.few {
			if n.few[i].seg == seg {
				return n.few[i].next
			}
		}
		return nil
	}
	return n.literal[seg]
}

// partialChild is a segment mixing text and one parameter, such as
// {id}.json or v{version}: it matches a segment with that prefix and suffix
// and at least one character between them.
type partialChild struct {
	prefix, suffix string
	next           *node
}

// NewRoutes builds a table from templates such as /api/v2/users/{userId}.
// The leading slash is optional, and the recorded template never has it, as
// the reference service writes them (api/v2/users/{userId}). A template
// given twice, or two templates that differ only in the names of their
// parameters, is an error: a path would match both.
func NewRoutes(templates []string) (*Routes, error) {
	rt := &Routes{}
	var errs []error
	for _, t := range templates {
		if err := rt.add(t); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return rt, nil
}

// Len returns the number of templates in the table; a nil table has none.
func (rt *Routes) Len() int {
	if rt == nil {
		return 0
	}
	return rt.n
}

func (rt *Routes) add(template string) error {
	clean := strings.TrimPrefix(strings.TrimSpace(template), "/")
	if clean == "" {
		return fmt.Errorf("route %q: empty template", template)
	}
	if len(clean) > maxTemplateLength {
		return fmt.Errorf("route %q: longer than %d bytes", template, maxTemplateLength)
	}
	segs := strings.Split(strings.TrimSuffix(clean, "/"), "/")
	n := &rt.root
	for i, seg := range segs {
		kind, prefix, suffix, err := parseSegment(seg)
		if err != nil {
			return fmt.Errorf("route %q: %w", template, err)
		}
		switch kind {
		case segLiteral:
			next := n.child(seg)
			if next == nil {
				next = &node{}
				n.addChild(seg, next)
			}
			n = next
		case segPartial:
			i := slices.IndexFunc(n.partial, func(p *partialChild) bool { return p.prefix == prefix && p.suffix == suffix })
			if i < 0 {
				n.partial = append(n.partial, &partialChild{prefix: prefix, suffix: suffix, next: &node{}})
				// Longer fixed text is more specific: try it first.
				slices.SortStableFunc(n.partial, func(a, b *partialChild) int {
					return (len(b.prefix) + len(b.suffix)) - (len(a.prefix) + len(a.suffix))
				})
				i = slices.IndexFunc(n.partial, func(p *partialChild) bool { return p.prefix == prefix && p.suffix == suffix })
			}
			n = n.partial[i].next
		case segParam:
			if n.param == nil {
				n.param = &node{}
			}
			n = n.param
		case segRest:
			if i != len(segs)-1 {
				return fmt.Errorf("route %q: a {name...} segment must be the last", template)
			}
			if n.rest != "" {
				return fmt.Errorf("route %q: conflicts with %q", template, n.rest)
			}
			n.rest = clean
			rt.n++
			return nil
		}
	}
	if n.template != "" {
		return fmt.Errorf("route %q: conflicts with %q", template, n.template)
	}
	n.template = clean
	rt.n++
	return nil
}

func (n *node) addChild(seg string, next *node) {
	if n.literal == nil && len(n.few) < maxFew {
		n.few = append(n.few, literalChild{seg, next})
		return
	}
	if n.literal == nil {
		n.literal = make(map[string]*node, len(n.few)+1)
		for _, c := range n.few {
			n.literal[c.seg] = c.next
		}
		n.few = nil
	}
	n.literal[seg] = next
}

const (
	segLiteral = iota
	segPartial
	segParam
	segRest
)

// maxTemplateLength is the longest template the server accepts.
const maxTemplateLength = 512

func parseSegment(seg string) (kind int, prefix, suffix string, err error) {
	open := strings.IndexByte(seg, '{')
	if open < 0 {
		if strings.IndexByte(seg, '}') >= 0 {
			return 0, "", "", fmt.Errorf("segment %q: unbalanced braces", seg)
		}
		if seg == "" {
			return 0, "", "", errors.New("empty segment")
		}
		return segLiteral, "", "", nil
	}
	closing := strings.IndexByte(seg[open:], '}')
	if closing < 0 {
		return 0, "", "", fmt.Errorf("segment %q: unbalanced braces", seg)
	}
	closing += open
	name := seg[open+1 : closing]
	prefix, suffix = seg[:open], seg[closing+1:]
	if strings.ContainsAny(prefix, "{}") || strings.ContainsAny(suffix, "{}") {
		return 0, "", "", fmt.Errorf("segment %q: at most one parameter per segment", seg)
	}
	if base, ok := strings.CutSuffix(name, "..."); ok {
		if base == "" || prefix != "" || suffix != "" {
			return 0, "", "", fmt.Errorf("segment %q: bad {name...}", seg)
		}
		return segRest, "", "", nil
	}
	if name == "" {
		return 0, "", "", fmt.Errorf("segment %q: empty parameter name", seg)
	}
	if prefix == "" && suffix == "" {
		return segParam, "", "", nil
	}
	return segPartial, prefix, suffix, nil
}

// Match returns the most specific template matching the path, without its
// leading slash, and whether one did. The path is a URL's escaped path
// (url.URL.EscapedPath), so that an escaped slash inside a parameter does not
// split it. One trailing slash is ignored. Match does not allocate.
func (rt *Routes) Match(path string) (string, bool) {
	if rt == nil {
		return "", false
	}
	path = strings.TrimPrefix(path, "/")
	path = strings.TrimSuffix(path, "/")
	t := rt.root.match(path)
	return t, t != ""
}

func (n *node) match(path string) string {
	if path == "" {
		return n.template
	}
	// IndexByte, not Cut: a one-byte separator has a faster search.
	seg, rest, more := path, "", false
	if i := strings.IndexByte(path, '/'); i >= 0 {
		seg, rest, more = path[:i], path[i+1:], true
	}
	if seg == "" {
		// An empty segment (a double slash) matches nothing: no template
		// has one, and a parameter must not be empty.
		return ""
	}
	if next := n.child(seg); next != nil {
		if t := next.descend(rest, more); t != "" {
			return t
		}
	}
	for _, p := range n.partial {
		if len(seg) > len(p.prefix)+len(p.suffix) && strings.HasPrefix(seg, p.prefix) && strings.HasSuffix(seg, p.suffix) {
			if t := p.next.descend(rest, more); t != "" {
				return t
			}
		}
	}
	if n.param != nil {
		if t := n.param.descend(rest, more); t != "" {
			return t
		}
	}
	return n.rest
}

// descend matches the rest of the path below n. A path that ended with this
// segment matches n's own template; one that goes on recurses.
func (n *node) descend(rest string, more bool) string {
	if !more {
		return n.template
	}
	if rest == "" {
		return "" // a double slash at the end; see match
	}
	return n.match(rest)
}

// PatternTemplate returns the template of an http.ServeMux pattern, as the
// reference service writes templates: without the method, the host and the
// leading slash ("GET example.com/api/v2/users/{id}" is
// "api/v2/users/{id}"). The {$} that anchors a pattern's end is dropped. The
// root pattern "/", which matches every path nothing else does, has no
// template (""); "/{$}", the root itself, is "/".
func PatternTemplate(pattern string) string {
	if i := strings.IndexByte(pattern, ' '); i >= 0 {
		pattern = strings.TrimLeft(pattern[i+1:], " \t")
	}
	if i := strings.IndexByte(pattern, '/'); i > 0 {
		pattern = pattern[i:] // drop the host
	}
	if pattern == "/" {
		return ""
	}
	pattern = strings.TrimSuffix(pattern, "{$}")
	if pattern == "/" {
		return "/"
	}
	return strings.TrimPrefix(pattern, "/")
}

// LoadRoutes reads a route table from a file: an OpenAPI document (JSON or
// YAML, OpenAPI 3 or Swagger 2), or a text file with one template a line
// (blank lines and lines starting with # are skipped).
func LoadRoutes(path string) (*Routes, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read routes: %w", err)
	}
	rt, err := ParseRoutes(data)
	if err != nil {
		return nil, fmt.Errorf("routes %s: %w", path, err)
	}
	return rt, nil
}

// ParseRoutes parses a route table: an OpenAPI document or a list of
// templates, as LoadRoutes describes. An OpenAPI document's paths are
// prefixed with its base path: Swagger 2's basePath, or the path of its
// servers' URLs when they all share one.
func ParseRoutes(data []byte) (*Routes, error) {
	trimmed := bytes.TrimSpace(data)
	if isOpenAPI(trimmed) {
		templates, err := openAPITemplates(trimmed)
		if err != nil {
			return nil, err
		}
		return NewRoutes(templates)
	}
	var templates []string
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		templates = append(templates, line)
	}
	if len(templates) == 0 {
		return nil, errors.New("no templates")
	}
	return NewRoutes(templates)
}

// isOpenAPI tells a document from a list of templates: a list's lines are
// paths, a document is a JSON object or YAML mapping whose lines are keys.
func isOpenAPI(data []byte) bool {
	if len(data) > 0 && data[0] == '{' {
		return true
	}
	for line := range bytes.Lines(data) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		for _, key := range []string{"openapi:", "swagger:", "paths:", `"openapi"`, `"swagger"`} {
			if bytes.HasPrefix(line, []byte(key)) {
				return true
			}
		}
	}
	return false
}

type openAPIDoc struct {
	OpenAPI  string                 `yaml:"openapi"`
	Swagger  string                 `yaml:"swagger"`
	BasePath string                 `yaml:"basePath"`
	Servers  []struct{ URL string } `yaml:"servers"`
	Paths    yaml.Node              `yaml:"paths"`
}

func openAPITemplates(data []byte) ([]string, error) {
	var doc openAPIDoc
	// JSON is YAML, so one parser reads both.
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse OpenAPI document: %w", err)
	}
	if doc.OpenAPI == "" && doc.Swagger == "" {
		return nil, errors.New("not an OpenAPI document: no openapi or swagger version")
	}
	if doc.Paths.Kind != yaml.MappingNode || len(doc.Paths.Content) == 0 {
		return nil, errors.New("OpenAPI document has no paths")
	}
	base := strings.TrimSuffix(doc.BasePath, "/")
	if doc.OpenAPI != "" {
		base = serversBase(doc.Servers)
	}
	var templates []string
	for i := 0; i < len(doc.Paths.Content); i += 2 {
		p := doc.Paths.Content[i].Value
		if !strings.HasPrefix(p, "/") {
			continue // an extension such as x-foo, not a path
		}
		templates = append(templates, base+p)
	}
	return templates, nil
}

// serversBase returns the path the servers of an OpenAPI 3 document share,
// or "" when they have none or differ (then the paths are taken as they are).
func serversBase(servers []struct{ URL string }) string {
	base := ""
	for i, s := range servers {
		u, err := url.Parse(s.URL)
		p := ""
		if err == nil {
			p = strings.TrimSuffix(u.Path, "/")
		}
		if strings.Contains(p, "{") {
			return "" // a server variable: the prefix is not known
		}
		if i > 0 && p != base {
			return ""
		}
		base = p
	}
	return base
}

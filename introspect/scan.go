package introspect

import (
	"encoding/json"
	"errors"
	"fmt"
)

// A scanner reads one JSON document (RFC 8259) in place, for the decoder of
// introspection responses: it validates as it goes, with encoding/json's
// grammar and nesting limit, and hands out the spans of values rather than
// decoding them. Strings are not unescaped here: a span is the value's bytes
// as they appear in the document, quotes included.
type scanner struct {
	data  []byte
	pos   int
	depth int
}

// maxDepth is encoding/json's nesting limit: a document nested deeper is an
// error there, and so here.
const maxDepth = 10000

// errSyntax is the cause of every syntax error; the message says where.
var errSyntax = errors.New("invalid JSON")

func (s *scanner) fail(what string) error {
	return fmt.Errorf("%w: %s at offset %d", errSyntax, what, s.pos)
}

// ws skips whitespace.
func (s *scanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the next byte after whitespace, or 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

// end checks that nothing but whitespace follows the document.
func (s *scanner) end() error {
	if s.ws(); s.pos != len(s.data) {
		return s.fail("data after the top-level value")
	}
	return nil
}

// value skips one value and returns its span. Objects and arrays are
// skipped in a loop, not by recursion: however deep a value the server
// nests, skipping it takes no more stack.
func (s *scanner) value() (span, error) {
	switch c := s.peek(); {
	case c == '{' || c == '[':
		return s.skipContainer()
	default:
		return s.scalar()
	}
}

// scalar reads a string, number or literal.
func (s *scanner) scalar() (span, error) {
	switch c := s.peek(); {
	case c == '"':
		return s.str()
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == 0 && s.pos == len(s.data):
		return span{}, s.fail("unexpected end of input")
	default:
		return span{}, s.fail(fmt.Sprintf("unexpected character %q", c))
	}
}

// skipContainer skips the object or array at s.pos, validating it, with a
// stack of the containers open (on the heap only past 64 levels).
func (s *scanner) skipContainer() (span, error) {
	start := s.pos
	kind := s.data[s.pos]
	var buf [64]byte
	open := buf[:0] // '{' or '[' of each container open
	// key reads a member name and its colon.
	key := func() error {
		if s.peek() != '"' {
			return s.fail("expected a member name")
		}
		if _, err := s.str(); err != nil {
			return err
		}
		if s.peek() != ':' {
			return s.fail("expected ':' after a member name")
		}
		s.pos++
		return nil
	}
	for {
		// A value is expected at s.pos.
		if c := s.peek(); c == '{' || c == '[' {
			if s.depth+len(open)+1 > maxDepth {
				return span{}, s.fail("exceeded max depth")
			}
			s.pos++
			open = append(open, c)
			closing := byte('}')
			if c == '[' {
				closing = ']'
			}
			if s.peek() == closing {
				s.pos++
				open = open[:len(open)-1]
			} else {
				if c == '{' {
					if err := key(); err != nil {
						return span{}, err
					}
				}
				continue
			}
		} else if _, err := s.scalar(); err != nil {
			return span{}, err
		}
		// After a value: a comma and the next one, or the end of containers.
		for {
			if len(open) == 0 {
				return span{start: start, end: s.pos, kind: kind}, nil
			}
			top := open[len(open)-1]
			c := s.peek()
			if c == ',' {
				s.pos++
				if top == '{' {
					if err := key(); err != nil {
						return span{}, err
					}
				}
				break
			}
			if top == '{' && c == '}' || top == '[' && c == ']' {
				s.pos++
				open = open[:len(open)-1]
				continue
			}
			if top == '{' {
				return span{}, s.fail("expected ',' or '}' in an object")
			}
			return span{}, s.fail("expected ',' or ']' in an array")
		}
	}
}

// object reads an object, calling member with the span of each member's
// name (a string) and value, in document order. member's error ends the
// scan.
func (s *scanner) object(member func(name, value span) error) error {
	if err := s.open('{'); err != nil {
		return err
	}
	if s.peek() == '}' {
		s.pos++
		s.depth--
		return nil
	}
	for {
		if s.peek() != '"' {
			return s.fail("expected a member name")
		}
		name, err := s.str()
		if err != nil {
			return err
		}
		if s.peek() != ':' {
			return s.fail("expected ':' after a member name")
		}
		s.pos++
		v, err := s.value()
		if err != nil {
			return err
		}
		if err := member(name, v); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			s.depth--
			return nil
		default:
			return s.fail("expected ',' or '}' in an object")
		}
	}
}

// array reads an array, calling elem with the span of each element.
func (s *scanner) array(elem func(value span) error) error {
	if err := s.open('['); err != nil {
		return err
	}
	if s.peek() == ']' {
		s.pos++
		s.depth--
		return nil
	}
	for {
		v, err := s.value()
		if err != nil {
			return err
		}
		if err := elem(v); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			s.depth--
			return nil
		default:
			return s.fail("expected ',' or ']' in an array")
		}
	}
}

func (s *scanner) open(c byte) error {
	if s.peek() != c {
		return s.fail(fmt.Sprintf("expected %q", c))
	}
	if s.depth++; s.depth > maxDepth {
		return s.fail("exceeded max depth")
	}
	s.pos++
	return nil
}

// str reads a string and returns its span, quotes included. The span is
// plain when the string has no escape and only ASCII: its bytes between the
// quotes are then its value.
func (s *scanner) str() (span, error) {
	start := s.pos
	s.pos++ // the opening quote
	plain := true
	for s.pos < len(s.data) {
		for s.pos < len(s.data) && strPlain[s.data[s.pos]] {
			s.pos++ // most of a string: one table lookup a byte
		}
		if s.pos == len(s.data) {
			break
		}
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			return span{start: start, end: s.pos, kind: '"', plain: plain}, nil
		case c == '\\':
			plain = false
			if s.pos+1 >= len(s.data) {
				return span{}, s.fail("unexpected end of input in a string")
			}
			switch s.data[s.pos+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.pos += 2
			case 'u':
				if s.pos+6 > len(s.data) || !isHex(s.data[s.pos+2]) || !isHex(s.data[s.pos+3]) || !isHex(s.data[s.pos+4]) || !isHex(s.data[s.pos+5]) {
					return span{}, s.fail(`invalid \u escape`)
				}
				s.pos += 6
			default:
				return span{}, s.fail("invalid escape in a string")
			}
		case c < 0x20:
			return span{}, s.fail("control character in a string")
		default:
			if c >= 0x80 {
				plain = false // UTF-8, valid or not: encoding/json decides what it is
			}
			s.pos++
		}
	}
	return span{}, s.fail("unexpected end of input in a string")
}

// strPlain are the bytes that stand for themselves in a string and keep it
// plain: printable ASCII but the quote and the backslash.
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// number reads a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
// The span is plain when the number is a non-negative integer of at most 15
// digits, exactly representable as a float64.
func (s *scanner) number() (span, error) {
	start := s.pos
	digits := func() int {
		n := 0
		for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
			s.pos++
			n++
		}
		return n
	}
	neg := s.data[s.pos] == '-'
	if neg {
		s.pos++
	}
	intDigits := 0
	switch {
	case s.pos < len(s.data) && s.data[s.pos] == '0':
		s.pos++
		intDigits = 1
	case s.pos < len(s.data) && s.data[s.pos] >= '1' && s.data[s.pos] <= '9':
		intDigits = digits()
	default:
		return span{}, s.fail("invalid number")
	}
	integer := true
	if s.pos < len(s.data) && s.data[s.pos] == '.' {
		s.pos++
		integer = false
		if digits() == 0 {
			return span{}, s.fail("invalid number")
		}
	}
	if s.pos < len(s.data) && (s.data[s.pos] == 'e' || s.data[s.pos] == 'E') {
		s.pos++
		integer = false
		if s.pos < len(s.data) && (s.data[s.pos] == '+' || s.data[s.pos] == '-') {
			s.pos++
		}
		if digits() == 0 {
			return span{}, s.fail("invalid number")
		}
	}
	return span{start: start, end: s.pos, kind: '0', plain: integer && !neg && intDigits <= 15}, nil
}

func (s *scanner) literal(lit string) (span, error) {
	start := s.pos
	if len(s.data)-s.pos < len(lit) || string(s.data[s.pos:s.pos+len(lit)]) != lit {
		return span{}, s.fail("invalid literal")
	}
	s.pos += len(lit)
	return span{start: start, end: s.pos, kind: lit[0]}, nil
}

// A span is where a value is in the document.
type span struct {
	start, end int
	// kind is the value's JSON type: '"' string, '0' number, '{' object,
	// '[' array, 't' true, 'f' false, 'n' null.
	kind byte
	// plain: a string without escapes or non-ASCII bytes, or a number that
	// is a non-negative integer of at most 15 digits (see scanner.str and
	// scanner.number); false for every other value.
	plain bool
}

// plainString reports whether the span is a plain string: its bytes
// between the quotes are its value.
func (sp span) plainString() bool { return sp.plain && sp.kind == '"' }

// bytes returns the value of the string at sp in v, which is valid JSON:
// the bytes between the quotes of a plain string, else a decoded copy.
func (sp span) bytes(v []byte) []byte {
	if sp.plain {
		return v[sp.start+1 : sp.end-1]
	}
	var s string
	_ = json.Unmarshal(v[sp.start:sp.end], &s)
	return []byte(s)
}

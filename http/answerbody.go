package http

import (
	"encoding/json"

	"github.com/sluicehq/sluice/internal/plain"
)

// proofMember finds the proof in the usual single-answer body,
// {"proof": <value>}, in one pass: the whole body must be valid JSON, an
// object whose only member is exactly "proof". It reports false for any
// other body, valid or not, which then goes through encoding/json as
// every body does; on the bodies it takes, it gives what encoding/json
// would put in answerRequest.Proof. The proof is then parsed once more by
// the proof package; encoding/json would have scanned it twice before.
func proofMember(b []byte) (json.RawMessage, bool) {
	start, ok := onlyMember(b, `"proof"`)
	if !ok {
		return nil, false
	}
	end, ok := valueEnd(b, start, 0)
	if !ok {
		return nil, false
	}
	i := skipSpace(b, end)
	if i >= len(b) || b[i] != '}' || skipSpace(b, i+1) != len(b) {
		return nil, false
	}
	return json.RawMessage(b[start:end]), true
}

// onlyMember reads the opening of {key: value} and returns where the
// value starts; the caller checks the value and the closing brace.
func onlyMember(b []byte, key string) (int, bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return 0, false
	}
	i = skipSpace(b, i+1)
	if len(b)-i < len(key) || string(b[i:i+len(key)]) != key {
		return 0, false
	}
	i = skipSpace(b, i+len(key))
	if i >= len(b) || b[i] != ':' {
		return 0, false
	}
	return skipSpace(b, i+1), true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// maxDepth bounds nesting; deeper values are left to encoding/json.
const maxDepth = 64

// valueEnd returns the end of the JSON value starting at b[i], checking
// its syntax as strictly as encoding/json does (strings are taken only in
// ASCII; anything else reports false).
func valueEnd(b []byte, i, depth int) (int, bool) {
	if i >= len(b) || depth > maxDepth {
		return 0, false
	}
	switch c := b[i]; {
	case c == '{':
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, true
		}
		for {
			end, ok := stringEnd(b, i)
			if !ok {
				return 0, false
			}
			i = skipSpace(b, end)
			if i >= len(b) || b[i] != ':' {
				return 0, false
			}
			if i, ok = valueEnd(b, skipSpace(b, i+1), depth+1); !ok {
				return 0, false
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return 0, false
			}
			if b[i] == '}' {
				return i + 1, true
			}
			if b[i] != ',' {
				return 0, false
			}
			i = skipSpace(b, i+1)
		}
	case c == '[':
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = valueEnd(b, i, depth+1); !ok {
				return 0, false
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return 0, false
			}
			if b[i] == ']' {
				return i + 1, true
			}
			if b[i] != ',' {
				return 0, false
			}
			i = skipSpace(b, i+1)
		}
	case c == '"':
		return stringEnd(b, i)
	case c == '-' || (c >= '0' && c <= '9'):
		return numberEnd(b, i)
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
				return i + len(lit), true
			}
		}
		return 0, false
	}
}

// stringEnd returns the end of the string at b[i]: ASCII, no control
// characters, escapes as JSON defines them.
func stringEnd(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, false
	}
	for i++; i < len(b); i++ {
		i = plain.Run(b, i)
		if i == len(b) {
			break
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20 || c >= 0x80:
			return 0, false
		case c == '\\':
			i++
			if i >= len(b) {
				return 0, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-i < 5 {
					return 0, false
				}
				for _, h := range b[i+1 : i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return 0, false
					}
				}
				i += 4
			default:
				return 0, false
			}
		}
	}
	return 0, false
}

// numberEnd returns the end of the number at b[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func numberEnd(b []byte, i int) (int, bool) {
	digits := func(i int) int {
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(i)
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}

// proofsMembers reads the usual batch-answer body,
// {"proofs": [{"file_hash": <value>, "proof": <value>}, ...]}, in one pass,
// as proofMember does for a single answer: the whole body must be valid
// JSON, an object whose only member is exactly "proofs", an array of
// objects whose members are exactly "file_hash" and "proof", each at most
// once. Anything else reports false and goes through encoding/json. The
// items point into b. A batch of a hundred 6 KB proofs took encoding/json
// two full scans and a copy of every proof.
func proofsMembers(b []byte) ([]proofItem, bool) {
	i, ok := onlyMember(b, `"proofs"`)
	if !ok || i >= len(b) || b[i] != '[' {
		return nil, false
	}
	items := []proofItem{}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		i++
	} else {
		for {
			var item proofItem
			var ok bool
			if item, i, ok = proofsItem(b, i); !ok {
				return nil, false
			}
			items = append(items, item)
			i = skipSpace(b, i)
			if i >= len(b) {
				return nil, false
			}
			if b[i] == ']' {
				i++
				break
			}
			if b[i] != ',' {
				return nil, false
			}
			i = skipSpace(b, i+1)
		}
	}
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != '}' || skipSpace(b, i+1) != len(b) {
		return nil, false
	}
	return items, true
}

// proofsItem reads one {"file_hash": ..., "proof": ...} object at b[i].
func proofsItem(b []byte, i int) (proofItem, int, bool) {
	var item proofItem
	if i >= len(b) || b[i] != '{' {
		return item, 0, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return item, i + 1, true
	}
	for {
		end, ok := stringEnd(b, i)
		if !ok {
			return item, 0, false
		}
		var dst *json.RawMessage
		switch string(b[i:end]) {
		case `"file_hash"`:
			dst = &item.FileHash
		case `"proof"`:
			dst = &item.Proof
		default:
			return item, 0, false
		}
		if *dst != nil {
			return item, 0, false // repeated: encoding/json's way
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return item, 0, false
		}
		start := skipSpace(b, i+1)
		if i, ok = valueEnd(b, start, 2); !ok {
			return item, 0, false
		}
		*dst = json.RawMessage(b[start:i])
		i = skipSpace(b, i)
		if i >= len(b) {
			return item, 0, false
		}
		if b[i] == '}' {
			return item, i + 1, true
		}
		if b[i] != ',' {
			return item, 0, false
		}
		i = skipSpace(b, i+1)
	}
}

package redisstore

import (
	"encoding/json"
	"strconv"
	"strings"
)

// metaOf reads the members of a snapshot that a Record carries. A snapshot
// is about 1 KiB of JSON, most of it parameters and jobs, and decoding it
// whole only to read five members was a third of the JSON work of a
// recovery (BenchmarkRecovery's profile). So metaOf scans the top-level
// object, skips the other members' values without decoding them, and
// decodes only its five; a snapshot it cannot scan that way (not an
// object, an escaped or case-folded member name) is decoded whole, so that
// anything encoding/json would read is read the same, and malformed JSON
// is reported by it. The values it skips are not validated.
func metaOf(data []byte) (meta, error) {
	if m, ok := scanMeta(data); ok {
		return m, nil
	}
	var m meta
	err := json.Unmarshal(data, &m)
	return m, err
}

// metaNames are the members metaOf decodes.
var metaNames = [...]string{"orderId", "status", "version", "createdAt", "deadline"}

// scanMeta is metaOf's fast path; ok is false where it cannot decide.
func scanMeta(data []byte) (m meta, ok bool) {
	i := skipSpace(data, 0)
	if i == len(data) || data[i] != '{' {
		return m, false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return m, skipSpace(data, i+1) == len(data)
	}
	for {
		if i == len(data) || data[i] != '"' {
			return m, false
		}
		end := skipString(data, i)
		if end < 0 {
			return m, false
		}
		name := string(data[i+1 : end-1])
		i = skipSpace(data, end)
		if i == len(data) || data[i] != ':' {
			return m, false
		}
		i = skipSpace(data, i+1)
		vend := skipValue(data, i)
		if vend < 0 {
			return m, false
		}
		val := data[i:vend]
		var err error
		switch name {
		case "orderId":
			m.OrderID, err = jsonString(val)
		case "status":
			err = json.Unmarshal(val, &m.Status)
		case "version":
			m.Version, err = strconv.ParseUint(string(val), 10, 64)
			if err != nil { // a float such as 1e3, say
				err = json.Unmarshal(val, &m.Version)
			}
		case "createdAt":
			err = m.CreatedAt.UnmarshalJSON(val)
		case "deadline":
			err = m.Deadline.UnmarshalJSON(val)
		default:
			// encoding/json matches names case-insensitively and unescapes them.
			if strings.ContainsRune(name, '\\') {
				return m, false
			}
			for _, n := range metaNames {
				if strings.EqualFold(name, n) {
					return m, false
				}
			}
		}
		if err != nil {
			return m, false
		}
		i = skipSpace(data, vend)
		if i == len(data) {
			return m, false
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			return m, skipSpace(data, i+1) == len(data)
		default:
			return m, false
		}
	}
}

// jsonString decodes a JSON string; one of printable ASCII without
// escapes (an order id) is just copied.
func jsonString(val []byte) (string, error) {
	plain := len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"'
	for i := 1; plain && i < len(val)-1; i++ {
		plain = val[i] >= 0x20 && val[i] < 0x7f && val[i] != '\\' && val[i] != '"'
	}
	if plain {
		return string(val[1 : len(val)-1]), nil
	}
	var s string
	err := json.Unmarshal(val, &s)
	return s, err
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at data[i] (a
// quote), or -1 if it does not end.
func skipString(data []byte, i int) int {
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// skipValue returns the index after the value starting at data[i], or -1
// if there is none. Objects and arrays are skipped by their brackets,
// without checking what is inside.
func skipValue(data []byte, i int) int {
	if i == len(data) {
		return -1
	}
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				end := skipString(data, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	case ',', '}', ']', ':':
		return -1
	}
	j := i
	for j < len(data) && !strings.ContainsRune(",}] \t\r\n", rune(data[j])) {
		j++
	}
	return j
}

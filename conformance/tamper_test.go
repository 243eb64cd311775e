package conformance

import (
	"encoding/json"
	"fmt"
	"strings"
)

// tamperFirstCase returns data with the last hex digit of field in the first
// case changed; field may be a dotted path into nested objects.
func tamperFirstCase(data []byte, field string) ([]byte, error) {
	var cases []map[string]any
	if err := json.Unmarshal(data, &cases); err != nil {
		return nil, err
	}
	obj := cases[0]
	path := strings.Split(field, ".")
	for _, p := range path[:len(path)-1] {
		next, ok := obj[p].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("no object %q", p)
		}
		obj = next
	}
	field = path[len(path)-1]
	v, ok := obj[field]
	if !ok {
		return nil, fmt.Errorf("no field %q", field)
	}
	s, ok := v.(string)
	if !ok || len(s) == 0 {
		return nil, fmt.Errorf("field %q is not a non-empty string", field)
	}
	last := s[len(s)-1]
	repl := byte('0')
	if last == '0' {
		repl = '1'
	}
	obj[field] = s[:len(s)-1] + string(repl)
	return json.Marshal(cases)
}

package conformance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrMissingField is wrapped by the failure of a case that lacks a field its
// checks read: absent, null where the format does not allow null, or an
// empty array where the format requires entries. Without this, a deleted
// hex field decodes as nil and a deleted array as zero iterations, and the
// case passes having checked nothing.
var ErrMissingField = errors.New("conformance: missing field")

// ErrMalformedCase is wrapped by the failure of a case whose structure is
// not the one of its kind (an object where an array belongs, ...).
var ErrMalformedCase = errors.New("conformance: malformed case")

// shapeKind is the JSON type a shape expects.
type shapeKind int

const (
	scalarShape shapeKind = iota // a string, number or boolean
	arrayShape
	objectShape
)

func (k shapeKind) String() string {
	switch k {
	case arrayShape:
		return "an array"
	case objectShape:
		return "an object"
	default:
		return "a string, number or boolean"
	}
}

// A shape describes the JSON value that one part of a case must be for the
// checks reading it to mean something. Every case is checked against the
// shape of its kind before it is verified. The shapes follow the Format
// sections of test-vectors.md: every field listed there is required unless
// the format makes it optional<T> (null, or here also absent), and every
// array must have entries unless the format allows none.
type shape struct {
	kind       shapeKind
	nullable   bool    // optional<T>: null, or absent as a member
	mayBeEmpty bool    // arrays: zero entries are a valid vector
	elem       *shape  // arrays: the shape of every entry
	members    []field // objects: the fields read by the checks
}

// A field is one member of an object shape.
type field struct {
	name string
	shape
}

// scalar is a required string, number or boolean (hex byte strings
// included: an empty one is a value, and a wrong one fails its check).
func scalar() shape { return shape{kind: scalarShape} }

// nullable is an optional<T> scalar.
func nullable() shape { return shape{kind: scalarShape, nullable: true} }

// arrayOf is an array with at least one entry.
func arrayOf(elem shape) shape { return shape{kind: arrayShape, elem: &elem} }

// arrayOf0 is an array the format allows to be empty.
func arrayOf0(elem shape) shape { return shape{kind: arrayShape, elem: &elem, mayBeEmpty: true} }

// objectOf is an object with the given fields.
func objectOf(members ...field) shape { return shape{kind: objectShape, members: members} }

// named makes a shape the field name of an object.
func named(name string, s shape) field { return field{name: name, shape: s} }

// values is a run of required scalar fields.
func values(names ...string) []field {
	fs := make([]field, len(names))
	for i, n := range names {
		fs[i] = named(n, scalar())
	}
	return fs
}

// fields joins runs of fields.
func fields(runs ...[]field) []field {
	var fs []field
	for _, r := range runs {
		fs = append(fs, r...)
	}
	return fs
}

// checkShape checks raw, found at path, against s.
func checkShape(s shape, path string, raw json.RawMessage) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		if s.nullable {
			return nil
		}
		return fmt.Errorf("%w: %s is null", ErrMissingField, path)
	}
	got := scalarShape
	switch raw[0] {
	case '[':
		got = arrayShape
	case '{':
		got = objectShape
	}
	if got != s.kind {
		return fmt.Errorf("%w: %s is %v, want %v", ErrMalformedCase, path, got, s.kind)
	}
	switch s.kind {
	case arrayShape:
		var entries []json.RawMessage
		if err := json.Unmarshal(raw, &entries); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrMalformedCase, path, err)
		}
		if len(entries) == 0 && !s.mayBeEmpty {
			return fmt.Errorf("%w: %s is empty", ErrMissingField, path)
		}
		for i, e := range entries {
			if err := checkShape(*s.elem, fmt.Sprintf("%s[%d]", path, i), e); err != nil {
				return err
			}
		}
	case objectShape:
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrMalformedCase, path, err)
		}
		for _, m := range s.members {
			p := m.name
			if path != "" {
				p = path + "." + m.name
			}
			v, ok := obj[m.name]
			if !ok {
				if m.nullable {
					continue
				}
				return fmt.Errorf("%w: %s", ErrMissingField, p)
			}
			if err := checkShape(m.shape, p, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkCase checks one case against the fields of its kind; the case
// itself must be an object.
func checkCase(members []field, raw json.RawMessage) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return fmt.Errorf("%w: the case is not a JSON object", ErrMalformedCase)
	}
	return checkShape(objectOf(members...), "", raw)
}

package jetstore

// OpenSealedForTest opens a sealed value read from subject with the keys s
// holds.
func OpenSealedForTest(s *Store, subject string, data []byte) ([]byte, error) {
	return s.ring.open(subject[len(s.l.keysPre):], data)
}

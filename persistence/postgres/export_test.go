package postgres

// Prepared tells whether s runs the small-batch upsert as a hand-encoded
// prepared statement.
func Prepared(s *Store) bool { return s.prepared }

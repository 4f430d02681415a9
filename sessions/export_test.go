package sessions

// Accessors for the external tests in package sessions_test, which cannot
// import this package's internals directly: they import internal/testutil,
// which imports this package.

// UserKeyBase returns "prefix{tag}:", the start of every key of userID.
func (s *RedisStore) UserKeyBase(userID string) string { return s.userBase(userID) }

// Prefix returns the prefix of every key the store writes.
func (s *RedisStore) Prefix() string { return s.prefix }

// SweepLockOwner returns the value this store writes into the sweep lock.
func (s *RedisStore) SweepLockOwner() string { return s.owner }

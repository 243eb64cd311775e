package jetstore

// SetHooks installs test-only fault injection: step is called before each
// step of a unit (a non-nil error stops the unit there, as a crash would),
// erased with each key-material value the store erases.
func SetHooks(o *Options, step func(string) error, erased func([]byte)) {
	o.hooks = &hooks{step: step, erased: erased}
}

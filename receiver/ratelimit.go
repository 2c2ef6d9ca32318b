package receiver

// warnf logs a warning at most once per interval and reason, with how many
// were suppressed, so a flood of bad input can't flood the log.
func (r *Receiver) warnf(reason, peer, msg string) {
	r.warn.Log(r.log.Warn, reason, peer, msg)
}

// infof is warnf for routine events.
func (r *Receiver) infof(reason, peer, msg string) {
	r.warn.Log(r.log.Info, reason, peer, msg)
}

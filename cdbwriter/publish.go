package cdbwriter

import "time"

// retry is one writer's back-off after failures.
type retry struct {
	at      time.Time
	backoff time.Duration
}

func (r *retry) failed(now time.Time, first, maxBackoff time.Duration) {
	if r.backoff == 0 {
		r.backoff = first
	} else {
		r.backoff = min(2*r.backoff, maxBackoff)
	}
	r.at = now.Add(r.backoff)
}

func (r *retry) succeeded() { *r = retry{} }

// writeMap publishes the table as the map; a failure keeps the previous map
// and schedules a retry.
func (s *Service) writeMap(now time.Time) error {
	err := s.publishMap(now)
	if err != nil {
		s.log.Error().Err(err).Dur("retry_in", s.mapRetry.backoff).Int("grants", s.table.Len()).
			Int("failures", s.mapFailures).Msg(s.mapFailedMessage())
	}
	return err
}

// mapFailedMessage says what a failed map write means, given the state
// file's own health: the state is written before the map, so its retry
// timer says whether the changes Postfix does not see are on disk.
func (s *Service) mapFailedMessage() string {
	switch {
	case s.cfg.StatePath == "":
		return "map write failed; Postfix keeps the previous map, without the grant changes since, which are in memory only (no state file); retrying"
	case s.stateRetry.backoff > 0:
		return "map write failed, and the state write is failing too; Postfix keeps the previous map, without the grant changes since, which are in memory only and a restart would lose; retrying both"
	}
	return "map write failed; Postfix keeps the previous map, without the grant changes since, which the state file has, so a restart keeps them; retrying"
}

func (s *Service) publishMap(now time.Time) error {
	members, _ := s.table.Versions()
	start := time.Now()
	err := s.writeMapFile(s.cfg.MapPath, s.table)
	took := time.Since(start)
	if s.cfg.OnPublish != nil {
		s.cfg.OnPublish(now, took, err)
	}
	if err != nil {
		s.stats.PublishErrors.Add(1)
		s.mapFailures++
		s.mapRetry.failed(now, max(s.cfg.Flush, 100*time.Millisecond), s.cfg.maxBackoff)
		return err
	}
	if s.mapFailures > 0 {
		s.log.Info().Int("failures", s.mapFailures).Int("entries", s.table.Len()).
			Msg("map write succeeded again; Postfix sees every grant")
		s.mapFailures = 0
	}
	s.mapRetry.succeeded()
	s.stats.Publishes.Add(1)
	s.stats.LastPublishUnix.Store(now.Unix())
	s.publishedMembers = members
	s.lastPublish = now
	s.log.Debug().Int("entries", s.table.Len()).Dur("took", took).Msg("published map")
	return nil
}

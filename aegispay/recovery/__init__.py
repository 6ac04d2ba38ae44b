"""Recovery: find payments left in flight, rebuild them from events, verify, settle."""

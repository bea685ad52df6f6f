"""Outbound campaigns: the pure dialer core (model, windows, retries, caps, pacing)."""

"""Helpers every layer may use: atomic file writes, what the hardware runs fast."""

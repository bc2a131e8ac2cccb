"""What a person reads: per-class tables, the data report, figures (colour masks, overlays, confusion, curves)."""

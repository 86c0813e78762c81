"""AnisoAlign ([AA] arXiv 2605.07825 §4), specified from the paper alone (no public code)."""

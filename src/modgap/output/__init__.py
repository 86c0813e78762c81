"""Output helpers below every stage: figures (PNG + PDF, checked) and tables (md, CSV, LaTeX).

Stages write their reports through these; no stage imports another stage's report code.
"""

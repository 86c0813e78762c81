"""Benchmark evaluation of trained ReVision MLLMs, the papers' tables and the claims report.

``suite`` builds the embedded mini-benchmarks from the held-out test split, ``runner`` decodes a
model over them, ``text_metrics``/``answers`` score the outputs, ``tables`` and ``claims`` turn
every measurement into the papers' tables and a verdict per claim.
"""

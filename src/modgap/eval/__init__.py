"""modgap.eval"""

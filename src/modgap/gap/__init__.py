"""modgap.gap"""

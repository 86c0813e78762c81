"""modgap.embed"""

"""modgap.align"""

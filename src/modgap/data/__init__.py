"""modgap.data"""

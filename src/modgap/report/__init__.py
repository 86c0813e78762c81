"""modgap.report"""

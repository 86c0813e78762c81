"""modgap.mllm"""

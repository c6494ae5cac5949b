"""Precision recipes for an export: FP16 graphs, INT8 SmoothQuant vision tower, INT4-AWQ LLM, FP8 Q/DQ.

Only ``modelopt_ptq`` imports NVIDIA Model Optimizer; everything else here is the project's own code.
"""

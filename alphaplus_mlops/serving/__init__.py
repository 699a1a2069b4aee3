"""Answering with a model: ONNX sessions verified before use (and, next, the signal service
with champion/challenger routing and hot swap). No Dagster here."""

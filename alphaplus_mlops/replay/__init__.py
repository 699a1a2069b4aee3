"""Replay: drive the loop through time and compare it with fixed retraining policies."""

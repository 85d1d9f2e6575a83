"""Backends: each turns a Case into a Result of the same shape."""

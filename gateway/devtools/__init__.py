"""Helpers for the demo, the benchmarks and the tests: a throwaway local Prosody."""

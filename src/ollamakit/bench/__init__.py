"""The benchmark: run prompts against models, measure client- and server-side timings."""

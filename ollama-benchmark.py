"""Benchmark the models on an Ollama server (same as ``ollamakit bench``).

uv run ollama-benchmark.py --auto
"""

from ollamakit.cli import bench_main

raise SystemExit(bench_main())

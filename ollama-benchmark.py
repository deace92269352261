"""Benchmark the models on an Ollama server: uv run ollama-benchmark.py --auto (= ollamakit bench)."""

from ollamakit.cli import bench_main

raise SystemExit(bench_main())

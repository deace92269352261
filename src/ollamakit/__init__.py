"""ollamakit: benchmark, chat with and diagnose Ollama servers, local or behind a proxy."""

from __future__ import annotations

__version__ = "0.1.0"

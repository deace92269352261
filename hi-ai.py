"""Chat with a model on an Ollama server: uv run hi-ai.py [--auto] (= ollamakit chat)."""

from ollamakit.cli import chat_main

raise SystemExit(chat_main())

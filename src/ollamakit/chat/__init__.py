"""The chat: ``uv run hi-ai.py`` / ``ollamakit chat`` (interactive) and ``--auto`` (greet only).

Layout, from the inside out:

* :mod:`~ollamakit.chat.session` — the conversation as data (turns, system prompt, options,
  totals) and the pure parsing of what the user types (slash commands, ``\"\"\"`` blocks). No
  I/O, so it is unit-tested directly.
* :mod:`~ollamakit.chat.models` — the server's model list: matching a name, formatting sizes.
* :mod:`~ollamakit.chat.transcript` — the JSONL transcript, one flushed line per event.
* :mod:`~ollamakit.chat.render` — how a streamed reply is drawn (rich, Markdown block by block,
  thinking dimmed in a gutter) or written plainly when output is not a terminal.
* :mod:`~ollamakit.chat.repl` — the loop: prompt_toolkit input, one request per message, Ctrl-C
  handling, commands.
* :mod:`~ollamakit.chat.auto` — ``--auto``: greet each model under a deadline, print a table.
* :mod:`~ollamakit.chat.cli` — arguments only; hands over to ``repl`` or ``auto``.
"""

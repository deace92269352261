"""The terminal line editor of the chat (prompt_toolkit), kept apart so pipes never import it.

* Enter sends the line — unless a ``\"\"\"`` block is open, then it adds a line (Alt-Enter always
  adds one); the block's markers are removed from the message.
* Pasted text arrives whole: prompt_toolkit turns on bracketed paste, so the newlines of a
  multi-line paste land in the buffer instead of sending it piece by piece.
* Ctrl-C clears a line being typed (as in a shell); on an empty line it raises
  ``KeyboardInterrupt`` so the chat can say how to leave. Ctrl-D on an empty line ends input.
* History lives in a file under ``OLLAMAKIT_HOME``; ``/`` completes command names (with their
  descriptions), then model names after ``/model``, option names after ``/set``.
* The placeholder ("Send a message") is drawn per frame and hidden in the final one, so it
  never stays on screen looking like something that was typed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from prompt_toolkit import PromptSession, prompt
from prompt_toolkit.application.current import get_app
from prompt_toolkit.completion import CompleteEvent, Completer, Completion, WordCompleter
from prompt_toolkit.document import Document
from prompt_toolkit.filters import Condition
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings
from prompt_toolkit.key_binding.key_processor import KeyPressEvent
from prompt_toolkit.styles import Style

from ollamakit.chat.session import COMMANDS, OPTION_NAMES, block_is_open, unwrap_block
from ollamakit.files import private_file
from ollamakit.i18n import t
from ollamakit.types import ModelEntry


class PromptInput:
    """prompt_toolkit line editor: history file, completion, blocks, bracketed paste."""

    interactive = True

    def __init__(self, history_path: Path, models: Callable[[], list[ModelEntry]]) -> None:
        bindings = KeyBindings()
        block_open = Condition(lambda: block_is_open(get_app().current_buffer.text))

        @bindings.add("enter", filter=block_open)
        def _newline_in_block(event: KeyPressEvent) -> None:
            event.current_buffer.newline(copy_margin=False)

        @bindings.add("enter", filter=~block_open)
        def _accept(event: KeyPressEvent) -> None:
            event.current_buffer.validate_and_handle()

        @bindings.add("escape", "enter")
        def _newline(event: KeyPressEvent) -> None:
            event.current_buffer.newline(copy_margin=False)

        @bindings.add("c-c")
        def _interrupt(event: KeyPressEvent) -> None:
            buffer = event.current_buffer
            if buffer.text:
                buffer.reset()  # like a shell: Ctrl-C drops the line being typed
            else:
                event.app.exit(exception=KeyboardInterrupt, style="class:aborting")

        history: History
        try:
            history = FileHistory(str(private_file(history_path)))  # what was typed: 0600
        except OSError:
            history = InMemoryHistory()
        self._session: PromptSession[str] = PromptSession(
            history=history,
            key_bindings=bindings,
            multiline=True,
            completer=SlashCompleter(models),
            complete_while_typing=True,
            prompt_continuation=lambda width, line, soft: "... ".rjust(width),
            # Evaluated per frame: hidden in the final frame, so a submitted empty line or a
            # Ctrl-C does not leave "Send a message" on the screen as if it had been typed.
            placeholder=lambda: (
                "" if get_app().is_done else [("class:placeholder", t("chat.placeholder"))]
            ),
            style=Style.from_dict({"placeholder": "#888888", "prompt": "bold"}),
            enable_open_in_editor=False,
        )

    def read(self) -> str | None:
        try:
            text = self._session.prompt([("class:prompt", ">>> ")])
        except EOFError:
            return None
        return unwrap_block(text)

    def ask(self, message: str, choices: list[str]) -> str:
        """One question with completion (the model picker)."""
        return prompt(message, completer=WordCompleter(choices, sentence=True))


class SlashCompleter(Completer):
    """Completes ``/commands``, then model names, option names and on/off after them."""

    def __init__(self, models: Callable[[], list[ModelEntry]]) -> None:
        self._models = models

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterator[Completion]:
        text = document.text_before_cursor
        if not text.startswith("/") or "\n" in text:
            return
        if " " not in text:
            for spec in COMMANDS:
                name = f"/{spec.name}"
                if name.startswith(text.lower()):
                    yield Completion(name, start_position=-len(text), display_meta=t(spec.help_key))
            return
        command, _, arg = text.partition(" ")
        choices: list[str] = []
        if command == "/model":
            choices = [m["name"] for m in self._models()]
        elif command == "/set" and " " not in arg:
            choices = list(OPTION_NAMES)
        elif command == "/think":
            choices = ["on", "off"]
        for choice in choices:
            if choice.lower().startswith(arg.lower()):
                yield Completion(choice, start_position=-len(arg))

"""``ollamakit chat`` / ``uv run hi-ai.py``: arguments only; the work is in ``repl`` and ``auto``.

``--model`` may be given several times for ``--auto``; the interactive chat takes one. The
interactive default model comes from ``OLLAMA_MODEL`` (``settings.model``); ``--auto`` without
``--model`` greets every model on the server, whatever ``OLLAMA_MODEL`` says, since its job is
to check them all.
"""

from __future__ import annotations

import argparse

from ollamakit.config import Settings
from ollamakit.errors import UsageError
from ollamakit.i18n import t
from ollamakit.ui.terminal import Terminal


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = t("chat.epilog")
    parser.add_argument("--auto", action="store_true", help=t("chat.help_auto"))
    parser.add_argument(
        "--model", action="append", metavar="NAME", default=None, help=t("chat.help_model")
    )
    parser.add_argument("--system", metavar="TEXT", help=t("chat.help_system"))
    parser.add_argument("--greeting", metavar="TEXT", help=t("chat.help_greeting"))
    parser.add_argument("--think", metavar="MODE", default=None, help=t("chat.help_think"))
    parser.add_argument("--demo", action="store_true", help=t("chat.help_demo"))
    parser.add_argument(
        "--timeout",
        dest="chat_timeout",  # read by config.py as CHAT_TIMEOUT_SECONDS (bench's is another key)
        type=float,
        default=None,
        metavar="SECONDS",
        help=t("chat.help_timeout"),
    )


def run(args: argparse.Namespace, settings: Settings, terminal: Terminal) -> int:
    if getattr(args, "demo", False):  # the built-in simulator, in this process (sim/demo.py)
        from ollamakit.sim.demo import demo_settings, refused_flag, start_demo

        flag = refused_flag(settings, bool(getattr(args, "insecure", False)))
        if flag is not None:
            raise UsageError(t("chat.demo_with_server", flag=flag))
        args.demo = False
        with start_demo() as sim:
            terminal.warn(t("chat.demo_banner"))
            return run(args, demo_settings(settings, sim.url), terminal)
    models: list[str] = [m for m in (args.model or []) if m.strip()]
    if args.auto:
        from ollamakit.chat.auto import run_auto

        return run_auto(
            settings,
            terminal,
            models=models or None,
            greeting=args.greeting,
            system=args.system,
            think=args.think,
        )
    if len(models) > 1:
        raise UsageError(t("chat.one_model"))
    from ollamakit.chat.repl import run_chat

    return run_chat(
        settings,
        terminal,
        model=models[0] if models else settings.model,
        system=args.system,
        think=args.think,
    )

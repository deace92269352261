"""``python -m ollamakit.sim``: the simulator without the umbrella CLI (what subprocesses run)."""

from __future__ import annotations

import argparse
import os

from ollamakit.i18n import detect_language, set_language
from ollamakit.sim.cli import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    # The umbrella CLI picks the language from --lang; standalone, the environment decides.
    set_language(detect_language(None, os.environ))
    parser = argparse.ArgumentParser(prog="python -m ollamakit.sim")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

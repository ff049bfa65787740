"""Drawing the demo upstream's images offline: the prompt's words on a gradient, sized like the real engines."""

from __future__ import annotations

import hashlib
import io
import textwrap

from PIL import Image, ImageDraw, ImageFont

SIZES = {"square": (1024, 1024), "portrait": (1024, 1536), "landscape": (1536, 1024)}
# Drawn at a quarter of the engine's size and scaled up: a real-sized PNG, at a fraction of the drawing time.
_DRAW_SCALE = 4


def render_png(prompt: str, orientation: str, seed: int) -> bytes:
    width, height = SIZES.get(orientation, SIZES["square"])
    small = (width // _DRAW_SCALE, height // _DRAW_SCALE)
    digest = hashlib.sha256(f"{prompt}|{seed}".encode()).digest()
    top, bottom = digest[:3], digest[3:6]
    image = Image.new("RGB", small)
    draw = ImageDraw.Draw(image)
    for y in range(small[1]):
        mix = y / max(1, small[1] - 1)
        colour = tuple(int(a + (b - a) * mix) for a, b in zip(top, bottom, strict=True))
        draw.line([(0, y), (small[0], y)], fill=colour)
    font = ImageFont.load_default(size=14)
    lines = textwrap.wrap(prompt, width=max(10, small[0] // 9))[:8]
    draw.multiline_text((12, 12), "\n".join(lines), fill=(255, 255, 255), font=font, spacing=4)
    image = image.resize((width, height), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=1)
    return buffer.getvalue()

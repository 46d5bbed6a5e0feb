"""Hostile image files, built in memory: each is small, and each must be refused with a clear reason.

``HOSTILE`` maps a file name to (bytes, words the refusal must contain). The unit tests feed them to
meshforge.images; the fleet tests upload them to the real orchestrator and hand them to image-service.
"""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

BACKGROUND = (235, 235, 230)
OBJECT = (200, 40, 40)


def still(size: tuple[int, int] = (96, 64), image_format: str = "PNG", **options: object) -> bytes:
    """A usable view: plain background, one solid object."""
    width, height = size
    image = Image.new("RGB", size, BACKGROUND)
    image.paste(OBJECT, (width // 4, height // 4, 3 * width // 4, 3 * height // 4))
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def frames(image_format: str, count: int, size: tuple[int, int] = (64, 64)) -> bytes:
    """An animation (GIF, APNG, WebP) or a multi-page TIFF of ``count`` frames."""
    images = [Image.new("RGB", size, (40 * i, 80, 200 - 40 * i)) for i in range(count)]
    buffer = io.BytesIO()
    images[0].save(buffer, format=image_format, save_all=True, append_images=images[1:], duration=100)
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR claims ``width`` × ``height`` RGB pixels (a decompression bomb's header)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _chunk(b"IEND", b"")
    )


def zip_bomb_png(side: int = 6000) -> bytes:
    """A real, complete PNG of ``side``² pixels of one colour: a few tens of KB that unpack to ~100 MB."""
    row = b"\x00" + bytes(BACKGROUND) * side
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def corrupt_jpeg() -> bytes:
    """A JPEG whose marker segments are overwritten after the start-of-image marker."""
    data = bytearray(still((128, 128), "JPEG"))
    for index in range(20, len(data) - 2, 7):
        data[index] = 0xFF
    return bytes(data)


def bmp_claiming(width: int, height: int) -> bytes:
    """A 54-byte BMP header claiming ``width`` × ``height`` 24-bit pixels, with no pixels after it."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 54 + 3 * width * height, 0, 0, 54) + info


def pcx() -> bytes:
    """A format Pillow can read but the service does not accept (parsers are an attack surface)."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), OBJECT).save(buffer, format="PCX")
    return buffer.getvalue()


_PNG = still((200, 200))
_JPEG = still((256, 256), "JPEG")
_TIFF = still((200, 200), "TIFF")

HOSTILE: dict[str, tuple[bytes, list[str]]] = {
    "truncated-60-bytes.png": (_PNG[:60], ["truncated or corrupt"]),
    "truncated-half.png": (_PNG[: len(_PNG) // 2], ["truncated or corrupt", "PNG"]),
    "claims-40000x40000.png": (png_claiming(40_000, 40_000), ["header claims 1600 million pixels"]),
    "bomb-196-megapixels.png": (png_claiming(14_000, 14_000), ["header claims 196 million pixels"]),
    "claims-12000x12000.png": (png_claiming(12_000, 12_000), ["12000×12000 pixels is too large", "16"]),
    "zip-bomb-6000x6000.png": (zip_bomb_png(), ["6000×6000 pixels is too large"]),
    "claims-huge.bmp": (bmp_claiming(30_000, 30_000), ["header claims 900 million pixels"]),
    "notes.txt": (b"just some notes, not a picture\n", ["it is text"]),
    "page.html": (b"<!DOCTYPE html><html><body>hello</body></html>", ["HTML page"]),
    "data.json": (b'{"image": "not really"}', ["JSON"]),
    "drawing.svg": (b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"/>', ["SVG"]),
    "animated.gif": (frames("GIF", 3), ["GIF image", "PNG, JPEG, WebP, BMP or TIFF"]),
    "animated.png": (frames("PNG", 3), ["is animated (3 frames): send a still image"]),
    "animated.webp": (frames("WEBP", 2), ["is animated (2 frames): send a still image"]),
    "pages.tif": (frames("TIFF", 2), ["is animated (2 frames): send a still image"]),
    "corrupt.jpg": (corrupt_jpeg(), ["JPEG", "corrupt"]),
    "truncated.jpg": (_JPEG[: len(_JPEG) // 2], ["truncated or corrupt", "JPEG"]),
    "truncated.tif": (_TIFF[: len(_TIFF) // 3], ["truncated or corrupt"]),
    "empty.png": (b"", ["empty (0 bytes)"]),
    "one-pixel.png": (still((1, 1)), ["1×1 pixels is too small", "32"]),
    "thin-10x5000.png": (still((10, 5000)), ["10×5000 pixels is too small"]),
    "random.bin": (bytes(range(256)) * 4, ["not an image", "could not be decoded"]),
    "picture.pcx": (pcx(), ["not an image", "PNG, JPEG, WebP, BMP or TIFF"]),
}

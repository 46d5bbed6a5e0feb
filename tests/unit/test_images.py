"""meshforge.images: untrusted image bytes are decoded completely, checked, and reduced on load."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from meshforge.errors import InvalidInput
from meshforge.geometry import normalise
from meshforge.images import (
    ImageLimits,
    ImageRejected,
    check_size,
    decode_image,
    reduce_to,
    shown_name,
)
from tests.hostile_images import HOSTILE, png_claiming, still

LIMITS = ImageLimits()


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_files_are_refused_naming_the_file_and_the_reason(name: str) -> None:
    data, words = HOSTILE[name]
    with pytest.raises(ImageRejected) as refused:
        decode_image(data, name, LIMITS, fit_side=1024)
    assert isinstance(refused.value, InvalidInput)  # a 422 wherever it is raised
    assert refused.value.message.startswith(f'"{name}" cannot be used: ')
    for word in words:
        assert word in refused.value.message


def test_a_complete_image_decodes_with_its_format() -> None:
    image = decode_image(still((96, 64)), "ok.png", LIMITS)
    assert image.size == (96, 64) and image.format == "PNG"
    assert image.getpixel((48, 32)) == (200, 40, 40)


@pytest.mark.parametrize(("image_format", "extension"), [("JPEG", "jpg"), ("WEBP", "webp"), ("BMP", "bmp")])
def test_every_allowed_format_decodes(image_format: str, extension: str) -> None:
    image = decode_image(still((64, 48), image_format), f"view.{extension}", LIMITS)
    assert image.format == image_format and image.size == (64, 48)


def test_the_content_decides_the_format_not_the_name() -> None:
    assert decode_image(still(), "photo.jpg", LIMITS).format == "PNG"


def test_files_on_disk_are_decoded_like_bytes(tmp_path: Path) -> None:
    path = tmp_path / "view.png"
    path.write_bytes(still((100, 80)))
    assert decode_image(path, "view.png", LIMITS).size == (100, 80)
    path.write_bytes(HOSTILE["truncated-60-bytes.png"][0])
    with pytest.raises(ImageRejected, match="truncated"):
        decode_image(path, "view.png", LIMITS)


def test_the_pixel_limit_is_a_setting_checked_from_the_header() -> None:
    data = png_claiming(5000, 5000)  # no pixel data worth the name: only the header is read
    with pytest.raises(ImageRejected, match="5000×5000 pixels is too large"):
        decode_image(data, "big.png", LIMITS)
    with pytest.raises(ImageRejected, match="truncated or corrupt"):  # past the limit: decoded, fails
        decode_image(data, "big.png", ImageLimits(max_pixels=30_000_000))


def test_pillows_bomb_warning_is_a_refusal_even_when_warnings_are_errors() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(ImageRejected, match="header claims 144 million pixels"):
            decode_image(png_claiming(12_000, 12_000), "warned.png", ImageLimits(max_pixels=200_000_000))


def test_pillows_bomb_error_is_a_refusal_whatever_our_limit() -> None:
    with pytest.raises(ImageRejected, match="far too many to decode"):
        decode_image(png_claiming(14_000, 14_000), "bomb.png", ImageLimits(max_pixels=10**9))


def test_the_minimum_side_is_32_pixels() -> None:
    check_size((32, 32), "ok.png", LIMITS)
    with pytest.raises(ImageRejected, match="31×400 pixels is too small"):
        check_size((31, 400), "thin.png", LIMITS)


def test_truncated_images_are_never_let_through_by_the_global_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        decode_image(still(), "ok.png", LIMITS)


def test_a_big_png_is_reduced_on_load_to_the_side_asked_for() -> None:
    image = decode_image(still((3000, 1500)), "big.png", LIMITS, fit_side=1024)
    assert image.size == (1024, 512) and image.format == "PNG"
    assert image.getpixel((512, 256)) == (200, 40, 40)


def test_a_big_jpeg_is_drafted_by_the_decoder_then_reduced() -> None:
    image = decode_image(still((4000, 3000), "JPEG", quality=90), "big.jpg", LIMITS, fit_side=512)
    assert image.size == (512, 384) and image.format == "JPEG"
    red, green, blue = image.getpixel((256, 192))
    assert red > 180 and green < 70 and blue < 70


def test_a_small_image_is_not_resampled() -> None:
    data = still((200, 100))
    decoded = decode_image(data, "a.png", LIMITS, fit_side=1024)
    assert decoded.tobytes() == Image.open(io.BytesIO(data)).tobytes()


def test_reduction_keeps_transparency_and_palette_images_usable() -> None:
    rgba = Image.new("RGBA", (2000, 2000), (0, 0, 0, 0))
    rgba.paste((200, 40, 40, 255), (500, 500, 1500, 1500))
    reduced = reduce_to(rgba, 500)
    assert reduced.size == (500, 500) and reduced.getpixel((250, 250)) == (200, 40, 40, 255)
    assert reduced.getpixel((5, 5))[3] == 0
    palette = rgba.convert("P")
    assert reduce_to(palette, 500).mode in ("RGB", "RGBA")


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("photo.png", "photo.png"),
        ("x\x00.png", "x?.png"),
        ("a\r\nSet-Cookie: x.png", "a??Set-Cookie: x.png"),
        ("evil\u202egnp.exe", "evil?gnp.exe"),
        ("line\u2028break.png", "line?break.png"),
        ('quote".png', "quote'.png"),
        ("../../etc/passwd", "../../etc/passwd"),  # only ever shown, never used as a path
        ("", "upload"),
        (None, "upload"),
        ("e\u0301te\u0301.png", "été.png"),  # NFC: one way to write each letter
    ],
)
def test_file_names_are_made_safe_to_show(name: str | None, shown: str) -> None:
    assert shown_name(name) == shown


def test_long_file_names_are_cut_to_100_characters() -> None:
    shown = shown_name("a" * 5000 + ".png")
    assert len(shown) == 100 and shown.endswith("…")
    assert len(ImageRejected("b" * 5000, "it is empty (0 bytes)").message) < 150


def test_normalisation_works_in_float32_at_the_working_size(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[tuple[int, ...], np.dtype]] = []
    composite = normalise._composite

    def record(rgba: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        out = composite(rgba, alpha)
        seen.append((rgba.shape, out.dtype))
        return out

    monkeypatch.setattr(normalise, "_composite", record)
    big = Image.open(io.BytesIO(still((3000, 2000))))
    (view,) = normalise.normalise_views([big], 256)
    assert view.shape == (256, 256, 4)
    assert seen == [((341, 512, 4), np.dtype(np.float32))]  # 3000×2000 reduced to 512 on the long side
    assert normalise.working_side(512) == 1024


def test_sixteen_bit_greyscale_keeps_its_contrast() -> None:
    grey = np.full((200, 300), 50_000, dtype=np.uint16)
    grey[50:150, 100:200] = 10_000
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, format="PNG")
    image = decode_image(buffer.getvalue(), "deep.png", LIMITS)
    assert image.mode == "L" and image.format == "PNG"
    assert image.getpixel((0, 0)) == 50_000 >> 8 and image.getpixel((150, 100)) == 10_000 >> 8
    (view,) = normalise.normalise_views([image], 64)  # an object is found, not a white page
    assert view[32, 32, 3] == 255


def test_a_truncated_big_jpeg_is_refused_even_when_drafted() -> None:
    data = still((4000, 3000), "JPEG", quality=90)
    with pytest.raises(ImageRejected, match="truncated or corrupt"):
        decode_image(data[: len(data) * 2 // 3], "cut.jpg", LIMITS, fit_side=512)

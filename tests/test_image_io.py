"""Every input kind real photos come in loads as RGB float in [0, 1]; bad files name themselves."""
from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from backlit_core.image_io import ImageReadError, list_images, load_image, save_png

RNG = np.random.default_rng(0)
RGB8 = RNG.integers(0, 256, size=(6, 10, 3), dtype=np.uint8)


def _expect(img: torch.Tensor, h: int, w: int) -> None:
    assert img.dtype == torch.float32 and img.shape == (3, h, w)
    assert 0.0 <= img.min() and img.max() <= 1.0


def test_rgb_jpeg_png_roundtrip(tmp_path: Path) -> None:
    Image.fromarray(RGB8).save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    _expect(img, 6, 10)
    assert np.array_equal(np.round(img.numpy().transpose(1, 2, 0) * 255).astype(np.uint8), RGB8)


# EXIF orientation -> how the stored pixels are shown (the TIFF/EXIF standard), written with numpy alone
SHOWN = {2: np.fliplr, 3: lambda a: np.rot90(a, 2), 4: np.flipud, 5: lambda a: a.transpose(1, 0, 2),
         6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, 2).transpose(1, 0, 2), 8: lambda a: np.rot90(a, 1)}


@pytest.mark.parametrize("orientation", sorted(SHOWN))
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation  # 6: rotate 90 degrees clockwise on display
    Image.fromarray(RGB8).save(tmp_path / "o.jpg", exif=exif, quality=95)
    with Image.open(tmp_path / "o.jpg") as raw:
        stored = np.asarray(raw.convert("RGB"))  # the decoded pixels, as stored (not rotated)
    img = load_image(tmp_path / "o.jpg")
    expected = SHOWN[orientation](stored)
    _expect(img, *expected.shape[:2])
    assert np.array_equal(np.round(img.numpy().transpose(1, 2, 0) * 255).astype(np.uint8), expected)


def test_grayscale_is_replicated(tmp_path: Path) -> None:
    Image.fromarray(RGB8[..., 0], "L").save(tmp_path / "g.png")
    img = load_image(tmp_path / "g.png")
    _expect(img, 6, 10)
    assert torch.equal(img[0], img[1]) and torch.equal(img[1], img[2])
    assert abs(img[0, 0, 0].item() - RGB8[0, 0, 0] / 255) < 1e-6


def test_rgba_drops_alpha(tmp_path: Path) -> None:
    rgba = np.dstack([RGB8, np.full((6, 10), 7, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    _expect(img, 6, 10)
    assert abs(img[1, 2, 3].item() - RGB8[2, 3, 1] / 255) < 1e-6


@pytest.mark.parametrize("transparency", [False, True])
def test_palette_image(tmp_path: Path, transparency: bool) -> None:
    pal = Image.fromarray(RGB8).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    if transparency:
        pal.info["transparency"] = 3  # palette entry 3 is transparent: its colour is still the pixel's
    pal.save(tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as saved:
        assert saved.mode == "P" and ("transparency" in saved.info) == transparency
        index = np.asarray(saved)
        palette = np.array(saved.getpalette(), np.uint8).reshape(-1, 3)
    img = load_image(tmp_path / "p.png")
    _expect(img, 6, 10)
    assert np.array_equal(np.round(img.numpy().transpose(1, 2, 0) * 255).astype(np.uint8), palette[index])
    assert len(np.unique(index)) > 4  # a real palette lookup, not a constant image


def test_16bit_grayscale_png_keeps_precision(tmp_path: Path) -> None:
    arr = np.array([[0, 1, 257, 65535]], dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "g16.png"), arr)
    img = load_image(tmp_path / "g16.png")
    _expect(img, 1, 4)
    assert np.allclose(img[0, 0].numpy(), arr[0] / 65535, atol=1e-7)


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_colour_keeps_precision_and_channel_order(tmp_path: Path, ext: str) -> None:
    rgb = np.zeros((2, 3, 3), np.uint16)
    rgb[..., 0] = 1000  # red
    rgb[..., 2] = 60000  # blue
    cv2.imwrite(str(tmp_path / f"c16{ext}"), rgb[..., ::-1].copy())
    img = load_image(tmp_path / f"c16{ext}")
    _expect(img, 2, 3)
    assert abs(img[0, 0, 0].item() - 1000 / 65535) < 1e-6
    assert abs(img[2, 0, 0].item() - 60000 / 65535) < 1e-6


def test_cmyk_jpeg(tmp_path: Path) -> None:
    Image.fromarray(RGB8).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    img = load_image(tmp_path / "c.jpg")
    _expect(img, 6, 10)
    assert abs(img.mean().item() - RGB8.mean() / 255) < 0.05


def test_truncated_jpeg_names_the_file(tmp_path: Path) -> None:
    Image.fromarray(np.tile(RGB8, (20, 20, 1))).save(tmp_path / "t.jpg", quality=95)
    data = (tmp_path / "t.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=r"t\.jpg: cannot decode"):
        load_image(tmp_path / "t.jpg")


def test_zero_byte_and_non_image(tmp_path: Path) -> None:
    (tmp_path / "z.png").write_bytes(b"")
    (tmp_path / "n.jpg").write_text("this is not a picture")
    with pytest.raises(ImageReadError, match=r"z\.png: empty file"):
        load_image(tmp_path / "z.png")
    with pytest.raises(ImageReadError, match=r"n\.jpg: not an image file"):
        load_image(tmp_path / "n.jpg")


def test_list_images_any_case_sorted(tmp_path: Path) -> None:
    for name in ("b.JPG", "a.png", ".hidden.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_images(tmp_path)] == ["a.png", "b.JPG"]


def test_save_png_8_and_16_bit(tmp_path: Path) -> None:
    img = torch.linspace(0, 1, 3 * 4 * 5).reshape(3, 4, 5)
    save_png(img, tmp_path / "o8.png")
    save_png(img, tmp_path / "o16.png", bits=16)
    back8, back16 = load_image(tmp_path / "o8.png"), load_image(tmp_path / "o16.png")
    assert (back8 - img).abs().max() <= 0.5 / 255 + 1e-6
    assert (back16 - img).abs().max() <= 0.5 / 65535 + 1e-7
    assert Image.open(tmp_path / "o8.png").mode == "RGB"
    assert not list(tmp_path.glob(".*tmp*")), "temporary files left behind"


# --- properties (hypothesis): every mode, bit depth and size loads as its pixels say ----------------------
def _write(mode: str, rng: np.random.Generator, h: int, w: int, path: Path) -> np.ndarray:
    """Write a random ``mode`` image of h x w pixels to ``path``; the RGB float array it must load as."""
    if mode in ("RGB16", "RGBA16"):  # 16-bit colour, written by OpenCV in its BGR(A) order
        rgba = rng.integers(0, 65536, (h, w, 4), dtype=np.uint16)
        channels = [2, 1, 0, 3] if mode == "RGBA16" else [2, 1, 0]
        assert cv2.imwrite(str(path), np.ascontiguousarray(rgba[..., channels]))
        return rgba[..., :3].astype(np.float32) / 65535.0
    if mode == "I;16":
        gray = rng.integers(0, 65536, (h, w), dtype=np.uint16)
        assert cv2.imwrite(str(path), gray)
        return np.repeat(gray[..., None], 3, axis=2).astype(np.float32) / 65535.0
    pixels = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    if mode == "P":
        colours = rng.integers(0, 256, (16, 3), dtype=np.uint8)
        index = pixels[..., 0] % 16
        img = Image.fromarray(index, "L").convert("P")
        img.putpalette(colours.tobytes())
        img.save(path)
        return colours[index].astype(np.float32) / 255.0
    channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}[mode]
    Image.fromarray(pixels[..., 0] if channels == 1 else pixels[..., :channels], mode).save(path)
    rgb = np.repeat(pixels[..., :1], 3, axis=2) if channels <= 2 else pixels[..., :3]
    return rgb.astype(np.float32) / 255.0


@given(mode=st.sampled_from(["L", "LA", "RGB", "RGBA", "P", "I;16", "RGB16", "RGBA16"]), h=st.integers(1, 40),
       w=st.integers(1, 40), seed=st.integers(0, 2**32 - 1), suffix=st.sampled_from([".png", ".tif"]))
def test_any_mode_depth_and_size_loads_as_its_pixels(mode: str, h: int, w: int, seed: int, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"x{suffix}"
        expected = _write(mode, np.random.default_rng(seed), h, w, path)
        img = load_image(path)
    _expect(img, h, w)
    np.testing.assert_allclose(img.numpy().transpose(1, 2, 0), expected, rtol=0, atol=1e-7)


@given(h=st.integers(1, 40), w=st.integers(1, 40), bits=st.sampled_from([8, 16]), seed=st.integers(0, 2**32 - 1))
def test_save_then_load_gives_the_rounded_image(h: int, w: int, bits: int, seed: int) -> None:
    img = torch.from_numpy(np.random.default_rng(seed).random((3, h, w), dtype=np.float32))
    with tempfile.TemporaryDirectory() as tmp:
        back = load_image(save_png(img, Path(tmp) / "o.png", bits=bits))
    maxv = 2**bits - 1
    assert torch.equal(torch.round(back * maxv), torch.floor(img * maxv + 0.5))  # round half up, exactly
    assert (back - img).abs().max() <= 0.5 / maxv + 1e-6

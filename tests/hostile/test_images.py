"""Crafted images: damaged pixel data behind valid checksums, formats a browser cannot show, pixel bombs."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image
from sqlalchemy import update

from lab_notes import BadImage, Figure, Notebook
from lab_notes.images import check_image
from lab_notes.schema import FigureRow


def png(size: int = 32) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def corrupt_png() -> bytes:
    """A PNG whose every chunk checksum is right but whose pixel data is garbage: `verify()` passes it."""
    good, out, pos = png(), png()[:8], 8
    while pos < len(good):
        length = struct.unpack(">I", good[pos:pos + 4])[0]
        kind, data = good[pos + 4:pos + 8], good[pos + 8:pos + 8 + length]
        if kind == b"IDAT":
            data = zlib.compress(b"\x07" * 50)
        out += struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        pos += 12 + length
    return out


def saved(fmt: str, **options) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(out, format=fmt, **options)
    return out.getvalue()


def test_a_png_with_corrupt_pixels_is_refused_though_its_checksums_pass():
    Image.open(io.BytesIO(corrupt_png())).verify()  # what the notebook used to rely on
    with pytest.raises(BadImage, match="damaged"):
        check_image(corrupt_png(), "figure")


@pytest.mark.parametrize("fmt", ["TIFF", "BMP", "ICO", "PPM", "TGA", "EPS"])
def test_formats_a_browser_cannot_show_are_refused(fmt):
    try:
        data = saved(fmt)
    except (OSError, KeyError) as missing:  # EPS needs Ghostscript to *write*; a crafted header stands in
        data = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\n" if fmt == "EPS" else None
        assert data is not None, missing
    with pytest.raises(BadImage, match="not a PNG, JPEG, GIF or WebP"):
        check_image(data)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_the_four_browser_formats_are_kept(fmt):
    assert check_image(saved(fmt)) == saved(fmt)


def test_a_pixel_bomb_is_refused_before_decoding():
    out = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(out, format="PNG")  # tiny file, 400 M pixels
    with pytest.raises(BadImage, match="pixel"):
        check_image(out.getvalue())


def test_a_damaged_image_already_stored_leaves_the_journal_page_working(tmp_path, monkeypatch):
    from tests.app.conftest import page

    url = f"sqlite:///{tmp_path / 'notebook.db'}"
    monkeypatch.setenv("LAB_NOTEBOOK_URL", url)
    monkeypatch.setenv("LAB_START_WORKER", "0")
    import streamlit as st

    st.cache_resource.clear()
    with Notebook(url) as notebook:
        broken = notebook.add_note(None, "", "before ![bad](./pic/bad.png) after", figures=[Figure("bad.png", png())])
        notebook.add_note(None, "", "a later note that must still render")
        with notebook._writer.begin() as connection:  # as an older notebook could hold it
            connection.execute(update(FigureRow).where(FigureRow.note_id == broken).values(image=corrupt_png()))
    app = page("journal")
    markdown = " ".join(m.value for m in app.markdown)
    assert "a later note that must still render" in markdown and "after" in markdown
    assert any("cannot be shown" in w.value or "damaged" in w.value for w in app.warning)
    app.button(key=f"delete:{broken}").click().run()  # its own Delete still works
    with Notebook(url) as notebook:
        assert [n.body for n in notebook.list_notes()] == ["a later note that must still render"]
    st.cache_resource.clear()

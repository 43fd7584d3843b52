"""The journal's Chinese is drawn with real glyphs, not boxes: the font tests/services.sh and the Dockerfile install
(fonts-noto-cjk) is the one Chromium falls back to for it."""

from __future__ import annotations

from lab_notes import Notebook

from tests.e2e.conftest import shoot
from tests.lab_notes.test_journal import ORIGINAL

# Each character drawn alone on a canvas, at the same spot, in the font the page gives the element. Without a font
# for them every CJK character is the same .notdef box (the "tofu"), pixel for pixel, and the same as the box of a
# private-use character no font has; with one, each is its own glyph.
GLYPHS = """(element, text) => {
  const style = getComputedStyle(element);
  const font = `${style.fontStyle} ${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = 64;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  const draw = (character) => {
    ctx.clearRect(0, 0, 64, 64);
    ctx.font = font;
    ctx.textBaseline = 'top';
    ctx.fillText(character, 8, 8);
    const alpha = ctx.getImageData(0, 0, 64, 64).data.filter((_, i) => i % 4 === 3);
    return {ink: alpha.filter(a => a > 0).length, pixels: alpha.join(','), width: ctx.measureText(character).width};
  };
  const tofu = draw('\\uE000');
  const glyphs = [...text].map(character => ({character, ...draw(character)}));
  return {
    font,
    tofuInk: tofu.ink,
    distinct: new Set(glyphs.map(g => g.pixels)).size,
    glyphs: glyphs.map(g => ({character: g.character, ink: g.ink, width: g.width, tofu: g.pixels === tofu.pixels})),
  };
}"""


def test_the_journal_draws_chinese_with_a_cjk_font_not_boxes(app_server, page):
    with Notebook(app_server["db"]) as notebook:
        notebook.import_journal(ORIGINAL)
    page.goto(f"{app_server['base']}/journal")
    page.get_by_role("heading", name="Journal").wait_for()
    line = page.get_by_text("AE结构换成了VIT，decoder共享权重").first
    line.wait_for()
    drawn = line.evaluate(GLYPHS, "网络结构")
    print(drawn["font"], [(g["character"], g["width"], g["ink"]) for g in drawn["glyphs"]])
    assert all(g["ink"] > 0 for g in drawn["glyphs"]), drawn
    assert not any(g["tofu"] for g in drawn["glyphs"]), f"drawn as boxes: {drawn}"
    assert drawn["distinct"] == 4, f"the four characters are drawn alike (boxes?): {drawn}"
    shoot(page, "journal-chinese")

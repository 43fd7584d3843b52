"""The Journal page in a real browser: no note makes the page fetch from another host, and a note of a megabyte of
image syntax does not stall it (issue #22, issue #28)."""

from __future__ import annotations

import datetime as dt
import re
import time
from urllib.parse import urlsplit

from lab_notes import Notebook
from tests.e2e.conftest import shoot
from tests.journal_bodies import slow_bodies
from tests.lab_notes.test_journal import ORIGINAL

WEB_IMAGE_IN_CODE = "```\nx = 1\n   \n![](http://198.51.100.7/tracker.png)\n```\n\nand ![seen](https://203.0.113.9/in-prose.png)\n"


def open_journal(page, base: str, notes: int) -> float:
    """Seconds from asking for the Journal to every note's body on the page (its Edit button comes after it)."""
    started = time.perf_counter()
    page.goto(f"{base}/journal")
    page.get_by_role("heading", name="Journal").wait_for()
    edit = page.get_by_role("button", name="Edit", exact=True)
    edit.nth(notes - 1).wait_for(timeout=120_000)
    return time.perf_counter() - started


def test_a_web_image_after_a_blank_line_in_code_is_never_fetched(app_server, page):
    base = app_server["base"]
    with Notebook(app_server["db"]) as notebook:
        notebook.add_note(dt.date(2026, 1, 2), "fenced", WEB_IMAGE_IN_CODE)
        notes = len(notebook.list_notes())
    elsewhere = []
    page.on("request", lambda request: elsewhere.append(request.url)
            if urlsplit(request.url).netloc != urlsplit(base).netloc else None)
    open_journal(page, base, notes)
    page.get_by_text(re.compile(r"Web image, not loaded: seen")).wait_for()  # the prose image, as a link
    page.wait_for_load_state("networkidle")
    shoot(page, "journal-web-image-in-code")
    assert elsewhere == [], f"requests left the page for other hosts: {elsewhere}"
    assert page.locator("img[src*='198.51.100.7'], img[src*='203.0.113.9']").count() == 0
    page.get_by_text("![](http://198.51.100.7/tracker.png)").wait_for()  # the code, shown as text


def test_a_megabyte_of_image_syntax_opens_within_twice_the_same_journal_without_it(app_server, page):
    base = app_server["base"]
    with Notebook(app_server["db"]) as notebook:
        notebook.import_journal(ORIGINAL)
        notes = len(notebook.list_notes())
    without = open_journal(page, base, notes)  # its notes rendered for the first time, as the big one will be
    body = slow_bodies(1_000_000)["`![` repeated then `](x)`"]
    with Notebook(app_server["db"]) as notebook:
        notebook.add_note(dt.date(2000, 1, 1), "one megabyte of image syntax", body)  # oldest: drawn last
    with_it = open_journal(page, base, notes + 1)
    page.locator("p", has_text="](x)").first.wait_for()
    print(f"Journal opened in {without:.2f} s without the 1 MB note, {with_it:.2f} s with it")
    assert with_it <= 2 * without, f"{with_it:.2f} s with the 1 MB note, {without:.2f} s without it"

"""The report page in a real headless Chromium: every figure decoded, nothing logged to the console."""

from __future__ import annotations

import re
from pathlib import Path

from kubenas.inspect.report import write_report
from kubenas.inspect.rundata import load_run_dir

from .browser import render
from .png import assert_sensible_png, png_size
from .synthetic import write_run_dir


def figures_loaded(dom: str) -> int:
    """What the page's own load handler counted (it sets <body data-figures-loaded>)."""
    match = re.search(r'<body[^>]*\bdata-figures-loaded="(\d+)"', dom)
    assert match is not None, "the page's load handler did not run"
    return int(match.group(1))


def test_the_report_renders_every_figure_in_chromium(tmp_path: Path) -> None:
    run = write_run_dir(tmp_path / "runs", 30, "nsga2", seed=3)
    page = write_report(load_run_dir(run), tmp_path / "report")
    figures = len(list((tmp_path / "report").glob("*.png")))
    assert figures == 6
    rendered = render(page, tmp_path / "screenshot.png")
    assert rendered.console == []
    assert figures_loaded(rendered.dom) == figures
    assert '<p class="note">This figure could not be displayed' not in rendered.dom
    assert png_size(tmp_path / "screenshot.png") == (1280, 3000)
    assert_sensible_png(tmp_path / "screenshot.png")


def test_a_broken_figure_and_a_script_error_are_caught(tmp_path: Path) -> None:
    """The checks above can fail: a figure Chromium cannot decode and a console error are both seen."""
    run = write_run_dir(tmp_path / "runs", 12, "random", seed=3)
    good = write_report(load_run_dir(run), tmp_path / "report")
    text = good.read_text()
    figures = text.count('<img class="figure"')
    broken = re.sub(r'(id="costs" alt="[^"]*" src="data:image/png;base64,)[^"]{64}', r"\1" + "A" * 64, text)
    broken = broken.replace("</body>", "<script>console.error('kubenas-test-error');</script></body>")
    page = tmp_path / "report" / "broken.html"
    page.write_text(broken)
    rendered = render(page, tmp_path / "screenshot.png")
    assert figures_loaded(rendered.dom) == figures - 1
    assert '<p class="note">This figure could not be displayed: Cost of each trial</p>' in rendered.dom
    assert any("kubenas-test-error" in line for line in rendered.console), rendered.console

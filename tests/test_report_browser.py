"""The report in a real browser (headless Chromium): it renders, sorts, filters and stays inert.

No browser-driver package: a copy of the report gets two small probe scripts (one first in
<head> that records errors and replaces the dialog functions, one last in <body> that
clicks, filters and writes its findings as JSON into <pre id="test-result">), Chromium
dumps the resulting DOM, and the test reads the JSON back. A screenshot of the untouched
report is kept as an artifact.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from test_report import XSS, make_run, make_scores

from ka_ml.reporting.html import write_report

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT_COPY = Path("/tmp/ka_ml_report.png")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="headless Chromium not installed (/usr/bin/chromium): apt-get install -y chromium",
    ),
]

PROBE_HEAD = """<script>
window.__errors = []; window.__dialogs = [];
window.addEventListener("error", function (e) { window.__errors.push(String(e.message)); });
["alert", "confirm", "prompt", "print"].forEach(function (n) {
  window[n] = function (m) { window.__dialogs.push(n + ":" + m); };
});
</script>"""

PROBE_BODY = """<script>
(function () {
  var out = {};
  function rows() { return Array.prototype.slice.call(document.querySelectorAll("#acct tbody tr")); }
  function shown() { return rows().filter(function (r) { return !r.hidden && r.offsetParent !== null; }); }
  function head(k) { return document.querySelector('#acct thead th[data-k="' + k + '"]'); }
  function keys(th) { var i = th.cellIndex; return rows().map(function (r) { return r.cells[i].getAttribute("data-s"); }); }
  function pick(sel, value) { sel.value = value; sel.dispatchEvent(new Event("change")); }
  try {
    out.rows = rows().length;
    out.cards = document.querySelectorAll("article.card").length;
    out.bars = document.querySelectorAll("svg.sv rect").length;
    var p = head("p");
    p.click(); out.asc = keys(p).map(parseFloat); out.ascSort = p.getAttribute("aria-sort");
    p.click(); out.desc = keys(p).map(parseFloat); out.descSort = p.getAttribute("aria-sort");
    var next = head("next");
    next.click(); out.nextAsc = keys(next);
    var light = document.querySelector('select[data-f="l"]');
    pick(light, "red");
    out.redShown = shown().map(function (r) { return r.getAttribute("data-l"); });
    out.counter = document.getElementById("shown").textContent;
    pick(light, ""); out.afterReset = shown().length;
    var owner = document.querySelector('select[data-f="o"]');
    pick(owner, "Ben Okafor");
    out.ownerShown = shown().map(function (r) { return r.getAttribute("data-o"); });
    pick(owner, "");
    var q = document.getElementById("q");
    q.value = "borealis"; q.dispatchEvent(new Event("input"));
    out.searchShown = shown().map(function (r) { return r.cells[1].textContent; });
    q.value = ""; q.dispatchEvent(new Event("input"));
    var first = rows()[0];
    first.cells[3].click();
    out.hash = location.hash; out.firstCard = "#" + first.getAttribute("data-c");
    var xss = Array.prototype.filter.call(document.querySelectorAll("#acct a, .card h3"), function (el) {
      return el.textContent === "<script>alert(1)</" + "script>";
    });
    out.xssElements = xss.length;
    out.xssVisible = xss.length > 0 && xss[0].getBoundingClientRect().height > 0;
    out.scripts = document.scripts.length;
  } catch (e) { out.exception = String((e && e.stack) || e); }
  out.errors = window.__errors; out.dialogs = window.__dialogs;
  var pre = document.createElement("pre"); pre.id = "test-result";
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
})();
</script>"""


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=True)


def _artifacts(tmp: Path) -> Path:
    folder = Path(os.environ.get("KA_ML_ARTIFACTS") or tmp)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def scores() -> pd.DataFrame:
    df = make_scores()
    df.loc[5, "name"] = XSS
    df.loc[6, "owner"] = XSS
    df.loc[7, "reason_1"] = XSS
    return df


@pytest.fixture(scope="module")
def page(scores: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What the probe found after clicking through the report in Chromium."""
    tmp = tmp_path_factory.mktemp("browser")
    report = write_report(scores, make_run(), tmp / "report.html").read_text(encoding="utf-8")
    probed = report.replace("<head>", "<head>" + PROBE_HEAD, 1).replace(
        "</body>", PROBE_BODY + "</body>", 1
    )
    (tmp / "probed.html").write_text(probed, encoding="utf-8")
    done = _chromium(
        tmp, "--dump-dom", "--virtual-time-budget=5000", (tmp / "probed.html").as_uri()
    )
    found = re.search(r'<pre id="test-result">(.*?)</pre>', done.stdout, re.S)
    assert found, f"the probe did not report; chromium said: {done.stderr[-2000:]}"
    result: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return result


def test_the_report_renders_every_account_row_and_card(page: dict[str, Any]) -> None:
    assert "exception" not in page, page.get("exception")
    assert page["rows"] == 30 and page["cards"] == 30
    assert page["bars"] == 90  # three reason bars per card


def test_no_script_error_or_dialog_happens_and_the_injected_name_is_plain_text(
    page: dict[str, Any],
) -> None:
    assert page["errors"] == []
    assert page["dialogs"] == []
    assert page["scripts"] == 3  # the report's own script and the two probes, nothing injected
    assert page["xssElements"] == 2  # table link and card heading show it as text
    assert page["xssVisible"] is True


def test_clicking_the_probability_header_sorts_numerically_both_ways(
    page: dict[str, Any], scores: pd.DataFrame
) -> None:
    expected = sorted(round(float(p), 6) for p in scores["churn_probability"])
    assert page["ascSort"] == "ascending"
    assert [round(p, 6) for p in page["asc"]] == pytest.approx(expected, abs=1e-5)
    assert page["descSort"] == "descending"
    assert [round(p, 6) for p in page["desc"]] == pytest.approx(expected[::-1], abs=1e-5)


def test_dates_sort_chronologically_with_open_ended_last(page: dict[str, Any]) -> None:
    assert page["nextAsc"] == sorted(page["nextAsc"])
    assert page["nextAsc"][-1] == "9999-12-31"


def test_the_filters_and_the_search_hide_the_other_rows(
    page: dict[str, Any], scores: pd.DataFrame
) -> None:
    n_red = int((scores["health"] == "red").sum())
    assert 0 < n_red < len(scores)
    assert page["redShown"] == ["red"] * n_red
    assert page["counter"] == f"{n_red} of {len(scores)} accounts"
    assert page["afterReset"] == len(scores)
    n_ben = int((scores["owner"] == "Ben Okafor").sum())
    assert page["ownerShown"] == ["Ben Okafor"] * n_ben
    assert page["searchShown"] and all("Borealis" in t for t in page["searchShown"])


def test_clicking_a_row_jumps_to_its_card(page: dict[str, Any]) -> None:
    assert page["hash"] == page["firstCard"]


def test_a_screenshot_is_kept_as_an_artifact(scores: pd.DataFrame, tmp_path: Path) -> None:
    report = write_report(scores, make_run(), tmp_path / "report.html")
    shot = _artifacts(tmp_path) / "report.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,2000", report.as_uri())
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 50_000  # a blank page compresses to a few KB
    shutil.copyfile(shot, SCREENSHOT_COPY)


# ---------------------------------------------------------------- a phone (390 px) and a desk

FRAMES = (("report", 390), ("owner", 390), ("report", 1400), ("owner", 1400))

PROBE_FRAMES = """<!DOCTYPE html><html><body style="margin:0">%s<script>
var out = {}, left = %d;
function fits(w, el) { var r = el.getBoundingClientRect(); return r.width > 0 && r.left >= 0 && r.right <= w.innerWidth + 0.5; }
function look(f) {
  var w = f.contentWindow, d = f.contentDocument, o = {};
  try {
    o.width = w.innerWidth; o.scrollWidth = d.documentElement.scrollWidth;
    o.lists = Array.prototype.map.call(d.querySelectorAll("#attention tbody tr, #winback tbody tr"), function (tr) {
      var cells = tr.querySelectorAll("td[data-h], td .b, td a");
      return {cells: cells.length, fit: Array.prototype.every.call(cells, function (c) { return fits(w, c); })};
    });
    o.cards = Array.prototype.every.call(d.querySelectorAll("article.card"), function (c) { return fits(w, c); });
    o.head = w.getComputedStyle(d.querySelector("#attention thead")).display;
    var top = function (sel) { return d.querySelector(sel).getBoundingClientRect().top; };
    o.aboutAfterLists = top("#about") > top("#winback") && top("#about") < top("#accounts");
  } catch (e) { o.exception = String((e && e.stack) || e); }
  out[f.id] = o;
  if (--left === 0) {
    var pre = document.createElement("pre"); pre.id = "test-result";
    pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
  }
}
</script></body></html>"""


@pytest.fixture(scope="module")
def screens(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The portfolio's and an owner's report, each seen 390 and 1400 px wide (in frames:
    headless Chromium's window is never narrower than 500 px)."""
    from test_report import with_win_back

    tmp = tmp_path_factory.mktemp("screens")
    df = with_win_back(make_scores())
    write_report(df, make_run(), tmp / "report.html")
    write_report(df[df["owner"].eq("Ana Silva")], make_run(owner="Ana Silva"), tmp / "owner.html")
    frames = "".join(
        f'<iframe id="{name}-{width}" src="{name}.html" onload="look(this)" '
        f'style="border:0;display:block;width:{width}px;height:1500px"></iframe>'
        for name, width in FRAMES
    )
    (tmp / "screens.html").write_text(PROBE_FRAMES % (frames, len(FRAMES)), encoding="utf-8")
    done = _chromium(
        tmp,
        "--allow-file-access-from-files",  # the probe reads the frames' documents
        "--window-size=1500,2000",
        "--dump-dom",
        "--virtual-time-budget=10000",
        (tmp / "screens.html").as_uri(),
    )
    found = re.search(r'<pre id="test-result">(.*?)</pre>', done.stdout, re.S)
    assert found, f"the probe did not report; chromium said: {done.stderr[-2000:]}"
    result: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return result


@pytest.mark.parametrize("name", ["report", "owner"])
def test_on_a_phone_the_page_never_scrolls_sideways_and_the_lists_fit(
    screens: dict[str, Any], name: str
) -> None:
    """Read on a 390 px phone: the call list showed Light, Account and Owner, the rest off
    the screen; Win-back and the cards were cut on the right. Every value of both lists and
    every card now lies within the screen, and the page is no wider than it."""
    phone = screens[f"{name}-390"]
    assert "exception" not in phone, phone.get("exception")
    assert phone["width"] == 390 and phone["scrollWidth"] <= 390
    owner = 1 if name == "report" else 0  # the Owner value: only in the portfolio report
    assert phone["lists"] and all(r["fit"] for r in phone["lists"])
    assert {r["cells"] for r in phone["lists"]} <= {4 + 2 + owner, 3 + 1 + owner}
    assert phone["cards"] is True
    assert phone["head"] == "none"  # one block per account, each value named
    assert phone["aboutAfterLists"] is True  # the definitions after the lists


@pytest.mark.parametrize("name", ["report", "owner"])
def test_on_a_desk_the_lists_stay_tables_under_the_definitions(
    screens: dict[str, Any], name: str
) -> None:
    desk = screens[f"{name}-1400"]
    assert "exception" not in desk, desk.get("exception")
    assert desk["scrollWidth"] <= desk["width"] == 1400
    assert desk["head"] == "table-header-group"
    assert desk["aboutAfterLists"] is False
    assert desk["cards"] is True and all(r["fit"] for r in desk["lists"])

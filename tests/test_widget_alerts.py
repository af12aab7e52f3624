"""Alerts in tracklab.widget(): the kernel side (the shared feed) sends a starting view the
alerts active now, read from the store and folded by key, and every change after; the
built front end (js/tests/harness.html, headless chromium) shows them as a banner that a
resolve or the dismiss button removes. The messages the browser gets are the ones the
kernel side sent, recorded."""

from __future__ import annotations

import math
import time

from conftest import wait_for
from test_js_unit import ROOT, _unavailable, http_root  # noqa: F401  (fixture)
from widget_recorder import Recorded, _fresh_kernel_monitor, ready  # noqa: F401 (autouse)

import tracklab
from tracklab_jupyter.metrics.sample import Event
from tracklab_jupyter.notebook.feed import fold_alerts
from tracklab_jupyter.process_monitor import process_monitor

INIT = {"type": "init", "node": "vm", "interval_s": 0.2, "window_s": 300,
        "info": {"cpu_model": "Xeon", "cpu_count": 4, "accelerators": []}}


def alert(monitor, key: str, severity: str = "warning", instant: bool = False,
          value: float | None = 93.0, since: float | None = None) -> Event:
    now = time.time()
    rule, _, subject = key.partition(":")
    event = Event(now, monitor.node, "alert", f"{rule} says {subject} is in trouble", {
        "key": key, "rule": rule, "severity": severity, "title": rule.upper(),
        "subject": subject, "since": since or now, "value": value, "threshold": 90.0,
        "kernels": [], "instant": instant})
    monitor.record_event(event)
    return event


def resolve(monitor, key: str, since: float) -> Event:
    rule, _, subject = key.partition(":")
    event = Event(time.time(), monitor.node, "alert_resolved", f"resolved: {rule} is fine", {
        "key": key, "rule": rule, "subject": subject, "since": since,
        "resolved": time.time(), "title": rule.upper()})
    monitor.record_event(event)
    return event


def stored_kinds(monitor) -> list[tuple[str, str]]:
    try:
        found = monitor.events(kinds=["alert", "alert_resolved"], start="-1h")
    except Exception:  # the store is not there yet
        return []
    return [(e["kind"], e["data"]["key"]) for e in found]


def test_fold_alerts_keeps_the_newest_unresolved_alert_per_key():
    def ev(t, kind, key, **data):
        return {"time": t, "kind": kind, "message": "", "data": {"key": key, **data}}

    events = [ev(5, "alert_resolved", "disk:/"), ev(1, "alert", "memory:host"),
              ev(2, "alert", "disk:/"), ev(3, "alert", "kernel_death:k1", instant=True),
              ev(4, "alert", "memory:host", severity="critical"),
              ev(4, "alert", "memory:host", severity="critical"),  # stored and seen live
              ev(6, "alert_resolved", "thermal:gpu.0"), ev(7, "alert", "thermal:gpu.0")]
    active = fold_alerts(events)
    assert [(e["data"]["key"], e["time"]) for e in active] == [("memory:host", 4),
                                                                ("thermal:gpu.0", 7)]
    assert active[0]["data"]["severity"] == "critical"


def test_banner_follows_the_alerts_the_feed_sends(browser, http_root):  # noqa: F811
    if not (ROOT / "tracklab_jupyter" / "static" / "widget.js").exists():
        _unavailable("tracklab_jupyter/static/widget.js not built")
    monitor = process_monitor()
    wait_for(lambda: monitor.latest is not None, what="the kernel monitor's first sample")

    # before the widget: memory active (value NaN: sent as null), disk raised and resolved,
    # a kernel's death (instant: never active)
    memory = alert(monitor, "memory:host", value=math.nan)
    disk = alert(monitor, "disk:/home")
    resolve(monitor, "disk:/home", disk.data["since"])
    alert(monitor, "kernel_death:0b7f", severity="critical", instant=True)
    wait_for(lambda: len(stored_kinds(monitor)) == 4, what="the alert events stored")

    widget = tracklab.widget()
    sent = Recorded(widget)
    ready(widget)
    (snapshot, _), = wait_for(lambda: sent.of("alerts"), what="the active alerts")
    assert [a["data"]["key"] for a in snapshot["alerts"]] == ["memory:host"]
    assert snapshot["alerts"][0]["data"]["value"] is None
    assert snapshot["alerts"][0]["message"] == memory.message

    # live: a critical one raised, then memory resolved
    thermal = alert(monitor, "thermal:gpu.0", severity="critical")

    def live(kind: str, key: str):
        return [c for c, _ in sent.of("event")
                if c["event"]["kind"] == kind and c["event"]["data"]["key"] == key]

    wait_for(lambda: live("alert", "thermal:gpu.0"), what="the thermal alert sent live")
    messages = [c for c, _ in sent.messages if c["type"] in ("init", "alerts", "event")]
    resolve(monitor, "memory:host", memory.data["since"])
    (resolved,) = wait_for(lambda: live("alert_resolved", "memory:host"),
                           what="the memory alert's resolve sent live")
    widget.close()

    page = browser.new_page(viewport={"width": 1000, "height": 700})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.on("console", lambda m: m.type in ("error", "warning") and errors.append(
        f"{m.type}: {m.text}"))
    page.goto(f"{http_root}/js/tests/harness.html?noinit=1&every=0")
    page.wait_for_selector(".tl-placeholder")
    page.evaluate("msgs => msgs.forEach((m) => __tl.emit(m))", messages)
    root = page.locator(".tl-root")
    banner = page.locator(".tl-alerts")
    mem = page.locator('.tl-alert[data-key="memory:host"]')
    hot = page.locator('.tl-alert[data-key="thermal:gpu.0"]')
    mem.wait_for()
    assert banner.locator(".tl-alert").count() == 2 and root.get_attribute("data-alerts") == "2"
    # most severe first; colour by severity; title, message, a dismiss button
    assert banner.locator(".tl-alert").first.get_attribute("data-key") == "thermal:gpu.0"
    assert hot.get_attribute("data-severity") == "critical"
    assert mem.get_attribute("data-severity") == "warning"
    assert mem.inner_text().startswith("MEMORY") and memory.message in mem.inner_text()
    colour = "e => getComputedStyle(e).borderLeftColor"
    assert hot.evaluate(colour) != mem.evaluate(colour)
    assert mem.locator("button[aria-label=dismiss]").is_visible()
    assert thermal.message in hot.inner_text()

    # the resolve the kernel sent removes the memory line; a stale snapshot that still
    # lists it (read before the resolve was stored) does not bring it back
    page.evaluate("m => __tl.emit(m)", resolved)
    mem.wait_for(state="detached")
    page.evaluate("m => __tl.emit(m)", snapshot)
    time.sleep(0.2)
    assert mem.count() == 0 and hot.count() == 1

    # dismissed: gone for this episode; a new episode of the key shows again
    hot.locator("button[aria-label=dismiss]").click()
    hot.wait_for(state="detached")
    assert root.get_attribute("data-alerts") == "0" and not banner.is_visible()
    again = {"type": "event", "event": {**live("alert", "thermal:gpu.0")[0]["event"]}}
    again["event"]["data"] = {**again["event"]["data"], "since": time.time()}
    page.evaluate("m => __tl.emit(m)", again)
    hot.wait_for()
    # a new view (init) starts from the kernel's next snapshot
    page.evaluate("m => __tl.emit(m)", INIT)
    hot.wait_for(state="detached")
    assert errors == []

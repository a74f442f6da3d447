"""Small HTML pages of the one-click acknowledge link (opened from an email, without login)."""

from __future__ import annotations

from html import escape

from bali_common.db import as_utc
from fastapi.responses import HTMLResponse

from bali_consultation.alerts.models import Alert

#: The token is in the URL: never leak it in a Referer, never cache, never frame (clickjacking).
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    ),
}

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;"
    "color:#1b1b1b}h1{font-size:1.4rem}dt{font-weight:600}dd{margin:0 0 .6rem}"
    "button{font-size:1.1rem;padding:.6rem 1.4rem;background:#0b5394;color:#fff;border:0;"
    "border-radius:4px;cursor:pointer}.muted{color:#555}"
)


def _page(title: str, body: str, status: int) -> HTMLResponse:
    html = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<meta name='robots' content='noindex'>"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(html, status_code=status, headers=_HEADERS)


def _summary(alert: Alert) -> str:
    places = "; ".join(alert.location.get("place_names", []))
    rows = [
        ("Alert", alert.title),
        ("Severity", f"{alert.severity} (urgency {alert.urgency}, certainty {alert.certainty})"),
        ("Where", places),
        ("Raised by", alert.raised_by_member),
        ("Raised at", as_utc(alert.raised_at).strftime("%Y-%m-%d %H:%M UTC")),
        ("Status", alert.status.replace("_", " ")),
    ]
    items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows)
    return f"<dl>{items}</dl>"


def confirmation_page(alert: Alert, *, token: str, action: str) -> HTMLResponse:
    """GET shows this; only the POST of its form acknowledges, so that link scanners and
    prefetchers that follow the email's link never acknowledge on a co-chair's behalf."""
    form = (
        f"<form method='post' action='{escape(action)}'>"
        f"<input type='hidden' name='token' value='{escape(token)}'>"
        "<button type='submit'>Acknowledge this alert</button></form>"
    )
    return _page("Acknowledge alert", _summary(alert) + form, 200)


def acknowledged_page(alert: Alert) -> HTMLResponse:
    return _page(
        "Alert acknowledged",
        _summary(alert)
        + "<p>Thank you. The other co-chair and the raising member are informed.</p>",
        200,
    )


def already_acknowledged_page(alert: Alert, *, status: int) -> HTMLResponse:
    by = alert.acknowledged_by or {}
    who = by.get("name") or by.get("member_id") or by.get("subject") or "a co-chair"
    when = (
        as_utc(alert.acknowledged_at).strftime("%Y-%m-%d %H:%M UTC")
        if alert.acknowledged_at
        else ""
    )
    detail = (
        f"<p>Already acknowledged by {escape(str(who))} {escape(when)}.</p>"
        if alert.acknowledged_at
        else "<p class='muted'>This alert can no longer be acknowledged.</p>"
    )
    return _page("Nothing to acknowledge", _summary(alert) + detail, status)


def error_page(*, status: int, title: str, detail: str | None) -> HTMLResponse:
    return _page(title, f"<p>{escape(detail or title)}</p>", status)

"""The service's HTML: Jinja2 templates shipped in the package, and its own static files.

Everything a page needs is served from here (no CDN: the platform runs air-gapped).
Static files are addressed by a hash of their content, so they can be cached for a
year and a new release is still fetched at once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from fastapi.templating import Jinja2Templates

from bali_reporting.dashboard.charts import SEVERITY_LOOK, share
from bali_reporting.progress.durations import human_duration

PACKAGE = Path(__file__).parent
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


@dataclass(frozen=True)
class StaticFile:
    content: bytes
    media_type: str
    url: str


def load_static(directory: Path = PACKAGE / "static") -> dict[str, StaticFile]:
    files = {}
    for path in sorted(directory.iterdir()):
        if path.suffix in STATIC_TYPES:
            content = path.read_bytes()
            digest = hashlib.sha256(content).hexdigest()[:12]
            files[path.name] = StaticFile(
                content, STATIC_TYPES[path.suffix], f"/static/{path.name}?v={digest}"
            )
    return files


def templates(static: dict[str, StaticFile]) -> Jinja2Templates:
    """Autoescaping on: every value from events (titles, names) is escaped."""
    found = Jinja2Templates(directory=PACKAGE / "templates")
    environment = found.env
    environment.filters["duration"] = human_duration
    environment.filters["share"] = share
    environment.globals["severity_look"] = SEVERITY_LOOK
    environment.globals["static"] = {name: f.url for name, f in static.items()}
    environment.trim_blocks = True
    environment.lstrip_blocks = True
    return found

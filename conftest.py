"""What the whole test suite shares: rate limits stay off unless a test turns them on.

Every test client talks from one address (127.0.0.1 or the ASGI test client's), so the
production defaults would throttle suites that send hundreds of requests, and refused tokens
(which many tests send on purpose) would lock that address out. The throttling tests enable
the limits in their own settings.
"""

from __future__ import annotations

import os

os.environ.setdefault("BALI_RATE_LIMIT_ENABLED", "false")

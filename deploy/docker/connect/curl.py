#!/usr/bin/env python3
"""curl -fs URL, for healthchecks written for the debezium/connect image (which has curl):
exit 0 when URL answers 2xx, 22 otherwise."""

import sys
import urllib.request

try:
    with urllib.request.urlopen(sys.argv[-1], timeout=5) as answer:  # noqa: S310
        sys.exit(0 if 200 <= answer.status < 300 else 22)
except Exception:  # noqa: BLE001
    sys.exit(22)

"""Sends one mixed batch through segment-analytics-python: valid funnel events plus one bad
message of each kind revloop must reject (or fold) one by one. Driven by tests/sdk.rs.

Usage: python mixed_batch.py <url> <write_key> <run_id>
Prints one JSON line: {"errors": [...]} — the SDK's on_error calls, which must be none.
"""

import datetime
import json
import sys

from segment.analytics.client import Client

url, write_key, run_id = sys.argv[1:4]
errors = []
client = Client(
    write_key,
    host=url,
    on_error=lambda error, batch: errors.append(str(error)),
    max_retries=0,
    upload_size=100,
    upload_interval=5,
)

now = datetime.datetime.now(datetime.timezone.utc)
phone = {"device": {"type": "mobile"}}


def track(n, event, properties=None, context=None, timestamp=None):
    client.track(
        user_id=f"user-{n}",
        event=event,
        properties=properties or {},
        context=context or phone,
        timestamp=timestamp or now,
        message_id=f"{run_id}-{n}",
    )


# Valid: 4 product views, 3 carts, 2 orders with revenue. Kept in step with tests/sdk.rs.
for n in range(4):
    track(n, "Product Viewed", {"product_id": f"p{n}"})
for n in range(4, 7):
    track(n, "Product Added", {"product_id": "p1"})
for n in range(7, 9):
    track(n, "Order Completed", {"revenue": 85.12, "currency": "USD"})
# A dimension value that cannot be decoded (a lone surrogate): counted, the value folded.
track(9, "Product Viewed", {"product_id": "p9"}, {"device": {"type": "\ud800"}})

# Bad, each rejected by itself.
track(100, "Product Viewed", timestamp=datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc))
track(101, "Product Viewed", timestamp=now + datetime.timedelta(days=2))
track(102, "Product Viewed", timestamp=now - datetime.timedelta(days=31))
track(103, "Order Completed", {"revenue": 90000000000000000, "currency": "USD"})

client.flush()
client.join()
print(json.dumps({"errors": errors}))

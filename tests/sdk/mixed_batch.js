// Sends one mixed batch through @segment/analytics-node: valid funnel events plus one bad
// message of each kind revloop must reject (or fold) one by one. Driven by tests/sdk.rs.
//
// Usage: node mixed_batch.js <url> <write_key> <run_id>
// Prints one JSON line: {"errors": [...]}: the SDK's error events, which must be none.
'use strict'
const { Analytics } = require('@segment/analytics-node')

const [url, writeKey, runId] = process.argv.slice(2)
const errors = []
const analytics = new Analytics({ writeKey, host: url, flushAt: 100, flushInterval: 10000, maxRetries: 0 })
analytics.on('error', (err) => errors.push(String(err && (err.reason || err.message || err.code) || err)))

const now = Date.now()
const day = 86400 * 1000
const phone = { device: { type: 'mobile' } }
function track (n, event, properties, context, timestamp) {
  analytics.track({
    userId: `user-${n}`,
    event,
    properties: properties || {},
    context: context || phone,
    timestamp: timestamp || new Date(now),
    messageId: `${runId}-${n}`
  })
}

// Valid: 4 product views, 3 carts, 2 orders with revenue. Kept in step with tests/sdk.rs.
for (let n = 0; n < 4; n++) track(n, 'Product Viewed', { product_id: `p${n}` })
for (let n = 4; n < 7; n++) track(n, 'Product Added', { product_id: 'p1' })
for (let n = 7; n < 9; n++) track(n, 'Order Completed', { revenue: 85.12, currency: 'USD' })
// A dimension value that cannot be decoded (a lone surrogate): counted, the value folded.
track(9, 'Product Viewed', { product_id: 'p9' }, { device: { type: '\ud800' } })

// Bad, each rejected by itself.
track(100, 'Product Viewed', null, null, new Date(0))
track(101, 'Product Viewed', null, null, new Date(now + 2 * day))
track(102, 'Product Viewed', null, null, new Date(now - 31 * day))
track(103, 'Order Completed', { revenue: 90000000000000000, currency: 'USD' })

analytics.closeAndFlush({ timeout: 20000 }).then(() => {
  console.log(JSON.stringify({ errors }))
})

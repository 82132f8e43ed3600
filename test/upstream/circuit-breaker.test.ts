import t from 'tap'
import { CircuitBreaker } from '../../src/upstream/circuit-breaker.js'

t.test('opens after N consecutive failures, half-opens after the reset, closes on success', async (t) => {
  let now = 1_000
  const cb = new CircuitBreaker({ failures: 3, resetMs: 10_000, now: () => now })
  for (let i = 0; i < 2; i++) {
    t.ok(cb.tryAcquire())
    cb.onFailure()
  }
  t.equal(cb.state, 'closed')
  t.ok(cb.tryAcquire())
  cb.onFailure()
  t.equal(cb.state, 'open')
  t.notOk(cb.tryAcquire(), 'open refuses')
  t.equal(cb.retryAfterSeconds(), 10)
  now += 9_999
  t.notOk(cb.tryAcquire())
  now += 1
  t.equal(cb.state, 'half-open')
  t.ok(cb.tryAcquire(), 'one trial')
  t.notOk(cb.tryAcquire(), 'only one trial at a time')
  cb.onSuccess()
  t.equal(cb.state, 'closed')
  t.ok(cb.tryAcquire())
})

t.test('a failed trial opens it again; a success resets the count', async (t) => {
  let now = 0
  const cb = new CircuitBreaker({ failures: 2, resetMs: 1_000, now: () => now })
  cb.onFailure()
  cb.onSuccess()
  cb.onFailure()
  t.equal(cb.state, 'closed', 'failures must be consecutive')
  cb.onFailure()
  t.equal(cb.state, 'open')
  now += 1_000
  t.ok(cb.tryAcquire())
  cb.onFailure()
  t.equal(cb.state, 'open')
  t.equal(cb.retryAfterSeconds(), 1)
})

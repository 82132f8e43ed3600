// How an upstream body is received (src/upstream/body-buffer.ts): into one buffer when its length is
// declared, kept in chunks while small, grown in place when large without a length; always the same
// bytes, in memory Fastify sends as bytes (an ArrayBuffer, not shared memory).
import Fastify from 'fastify'
import t, { type Test } from 'tap'
import { BodyBuffer, GROWING_BODY_BYTES } from '../../src/upstream/body-buffer.js'

function bytes(n: number, seed = 7): Buffer {
  const b = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff
  return b
}

function receive(t: Test, body: Buffer, declared: number | null, chunk: number, maxBytes = 2 ** 31): Buffer {
  const into = new BodyBuffer(declared, maxBytes)
  for (let at = 0; at < body.length; at += chunk) into.push(body.subarray(at, at + chunk))
  t.equal(into.size, body.length)
  return into.body()
}

t.test('the same bytes back however they come', async (t) => {
  for (const size of [
    0,
    10,
    70_000,
    GROWING_BODY_BYTES - 1,
    GROWING_BODY_BYTES,
    GROWING_BODY_BYTES * 3 + 5,
  ]) {
    const body = bytes(size)
    for (const chunk of [1000, 65_536]) {
      if (size > 200_000 && chunk === 1000) continue
      for (const declared of [size, null, size + 100, Math.max(0, size - 100)]) {
        const got = receive(t, body, declared, chunk)
        t.ok(got.equals(body), `${size} bytes, ${chunk} per chunk, declared ${declared}`)
        t.ok(got.buffer instanceof ArrayBuffer, 'in an ArrayBuffer')
      }
    }
  }
})

t.test('a large body without a length grows in place, one buffer that Fastify sends as bytes', async (t) => {
  const body = bytes(GROWING_BODY_BYTES * 2 + 1234)
  const got = receive(t, body, null, 65_536)
  t.equal(got.byteOffset, 0)
  t.equal(got.buffer.byteLength, body.length, 'the buffer is the body, whole (it can be moved to the worker)')
  t.equal((got.buffer as ArrayBuffer & { resizable?: boolean }).resizable, true, 'grown, not joined')
  const app = Fastify()
  app.get('/', (_request, reply) => reply.type('application/json').send(got))
  t.teardown(() => app.close())
  const res = await app.inject({ url: '/' })
  t.ok(res.rawPayload.equals(body), 'sent as the bytes, not serialized')
})

t.test('a declared body is received into one allocation', async (t) => {
  const body = bytes(200_000)
  const got = receive(t, body, body.length, 16_384)
  t.equal(got.buffer.byteLength, body.length, 'the preallocated buffer itself')
})

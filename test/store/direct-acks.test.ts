/**
 * Direct acknowledgements (src/store/direct-acks.ts) on loopback: a proven one
 * is told, one naming another member, a wrong token, an unknown or finished
 * announcement, or an oversized datagram is not; an announcement's request
 * parses back, and anything but an IP literal with a port is refused.
 */
import { createSocket } from 'node:dgram'
import t, { type Test } from 'tap'
import { DirectAcks, parseAckRequest, RECEIPT_WAIT_MS } from '../../src/store/direct-acks.js'

function datagram(to: { host: string; port: number }, text: string | Buffer): Promise<void> {
  const socket = createSocket('udp4')
  return new Promise((resolve) =>
    socket.send(text, to.port, to.host, () => {
      socket.close()
      resolve()
    }),
  )
}

/** Resolves once `heard` has `n` entries, or after `ms` (then the test's assertion tells). */
async function until(heard: string[], n: number, ms = 2000): Promise<void> {
  const deadline = performance.now() + ms
  while (heard.length < n && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5))
}

/** A writer socket that answers receipts only when `answering` says so. */
async function silentWriter(t: Test, answering: () => boolean) {
  const raw = createSocket('udp4')
  await new Promise<void>((r) => raw.bind(0, '127.0.0.1', r))
  t.teardown(() => raw.close())
  let received = 0
  raw.on('message', (m, from) => {
    received++
    const text = m.toString('latin1')
    if (answering()) raw.send(`!${text.slice(0, text.lastIndexOf('\n'))}`, from.port, from.address)
  })
  return { port: raw.address().port, received: () => received }
}

/** A sender that records what it sends instead of sending it, to replay or alter. */
async function capture(request: ReturnType<typeof parseAckRequest>, member: string): Promise<string> {
  const sink = await DirectAcks.open('127.0.0.1')
  t.teardown(() => sink.close())
  const seen: Buffer[] = []
  const raw = createSocket('udp4')
  await new Promise<void>((r) => raw.bind(0, '127.0.0.1', r))
  t.teardown(() => raw.close())
  raw.on('message', (m) => seen.push(m))
  if (!request) throw new Error('no request')
  sink.send({ ...request, port: raw.address().port }, member, () => {})
  const deadline = performance.now() + 2000
  while (seen.length === 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5))
  return (seen[0] as Buffer).toString('latin1')
}

t.test('a proven acknowledgement is told; forged, replayed or stray ones are not', async (t) => {
  const writer = await DirectAcks.open('127.0.0.1')
  // Its receipts may be slow on a busy machine; this test is not about when the fallback fires.
  const member = await DirectAcks.open('127.0.0.1', { receiptWaitMs: 60_000 })
  t.teardown(() => {
    writer.close()
    member.close()
  })
  const heard: string[] = []
  const expectation = writer.expect((m) => heard.push(m))
  const request = parseAckRequest(expectation.request)
  t.ok(request, 'the request an announcement carries parses back')
  t.same(request && { host: request.host, port: request.port }, writer.address)

  // What member b would send, captured: the tag, the name and the token.
  const fromB = await capture(request, 'b')
  const [tag, name, token] = fromB.split('\n') as [string, string, string]
  t.equal(name, 'b')
  t.notOk(fromB.includes(request?.secret ?? '-'), 'the secret itself never travels in a datagram')

  await datagram(writer.address, `${tag}\nc\n${token}`)
  // A token that differs in its bytes (replacing characters could leave them the same: the last
  // base64url character carries padding bits, and 'AA' may be what was there, once in 256 runs).
  const wrong = Buffer.from(token, 'base64url')
  wrong[0] = (wrong[0] as number) ^ 1
  await datagram(writer.address, `${tag}\nb\n${wrong.toString('base64url')}`)
  // A tag one character off (never the character that was there: then it would be b's own).
  await datagram(writer.address, `${tag.slice(0, -1)}${tag.endsWith('x') ? 'y' : 'x'}\nb\n${token}`)
  await datagram(writer.address, `${tag}\nb`)
  await datagram(writer.address, Buffer.alloc(600, 'a'))
  await datagram(writer.address, `${tag}\nb\n${token}${'A'.repeat(600)}`)
  // A proven one after the forgeries: when it is heard, the ones before it have been looked at.
  const fallbacks: string[] = []
  member.send(request as NonNullable<typeof request>, 'm', () => fallbacks.push('m'))
  await until(heard, 1)
  t.same(
    heard,
    ['m'],
    "b's token under c's name, a wrong token, a wrong tag, a cut or oversized datagram: ignored",
  )

  await datagram(writer.address, fromB)
  await until(heard, 2)
  t.same(heard, ['m', 'b'], "b's own datagram is b's acknowledgement")

  expectation.done()
  await datagram(writer.address, fromB)
  const again = writer.expect((m) => heard.push(`late:${m}`))
  member.send(parseAckRequest(again.request) as NonNullable<typeof request>, 'm', () => fallbacks.push('m2'))
  await until(heard, 3)
  t.same(
    heard,
    ['m', 'b', 'late:m'],
    'an announcement that is done hears nothing more; the next one is its own',
  )
  again.done()
  await new Promise((r) => setTimeout(r, 100))
  t.same(fallbacks, [], 'the writer sent receipts: nothing went through Redis as well')
})

t.test('an acknowledgement request is a secret, an IP literal and a port', async (t) => {
  const secret = 'A'.repeat(22)
  t.same(parseAckRequest(`${secret} 127.0.0.1 4000`), { secret, host: '127.0.0.1', port: 4000 })
  t.same(parseAckRequest(`${secret} ::1 4000`), { secret, host: '::1', port: 4000 })
  for (const bad of [
    `${secret} localhost 4000`,
    `${secret} 127.0.0.1 0`,
    `${secret} 127.0.0.1 65536`,
    `${secret} 127.0.0.1 40.5`,
    `${secret} 127.0.0.1`,
    `${secret} 127.0.0.1 4000 extra`,
    `short 127.0.0.1 4000`,
    `${'A'.repeat(21)}! 127.0.0.1 4000`,
    '',
  ])
    t.equal(parseAckRequest(bad), null, JSON.stringify(bad))
})

t.test('a socket that cannot bind rejects; a closed one sends nothing and throws nothing', async (t) => {
  await t.rejects(DirectAcks.open('192.0.2.1'), 'an address this host does not have')
  const acks = await DirectAcks.open('127.0.0.1')
  const request = parseAckRequest(acks.expect(() => {}).request)
  acks.close()
  acks.close()
  let fallbacks = 0
  t.doesNotThrow(() => acks.send(request as NonNullable<typeof request>, 'b', () => fallbacks++))
  t.equal(fallbacks, 1, 'a closed socket acknowledges through Redis at once')
})

t.test('a member acknowledges through Redis as well only when no receipt comes', async (t) => {
  const member = await DirectAcks.open('127.0.0.1', { receiptWaitMs: 20 })
  t.teardown(() => member.close())
  t.equal(RECEIPT_WAIT_MS, 5, 'the default wait')
  let answering = false
  const writer = await silentWriter(t, () => answering)
  const request = (n: number) => ({
    secret: String(n).padStart(22, 'S'),
    host: '127.0.0.1',
    port: writer.port,
  })
  let fallbacks = 0
  member.send(request(1), 'b', () => fallbacks++)
  t.equal(fallbacks, 0, 'not at once for a writer not known to be silent')
  const deadline = performance.now() + 2000
  while (fallbacks === 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 2))
  t.equal(fallbacks, 1, 'through Redis once no receipt came in time')
  t.equal(member.unprovenWriters, 1)
  member.send(request(2), 'b', () => fallbacks++)
  t.equal(fallbacks, 2, 'at once, for a writer whose last receipt did not come')
  answering = true
  member.send(request(3), 'b', () => fallbacks++)
  t.equal(fallbacks, 3, 'still at once: the receipt is on its way')
  while (member.unprovenWriters > 0 && performance.now() < deadline + 2000)
    await new Promise((r) => setTimeout(r, 2))
  t.equal(member.unprovenWriters, 0, 'its receipt proved the writer reachable again')
  member.send(request(4), 'b', () => fallbacks++)
  t.equal(fallbacks, 3, 'so the next acknowledgement waits for its own receipt')
  while (writer.received() < 4 && performance.now() < deadline + 4000)
    await new Promise((r) => setTimeout(r, 2))
  t.equal(writer.received(), 4, 'every acknowledgement went out by datagram')
})

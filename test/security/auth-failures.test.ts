/**
 * SPEC 13, "failed authentication cannot be outrun", "contexts pinned per consumer" and
 * "usernames", attacked against the real emulator through a proxy that counts what reaches it:
 * 200 parallel wrong tokens against a budget of 5 let at most 5 through (on one instance, and on
 * two sharing Redis); Trisul's invalid-token envelope counts whatever `normalizeErrors` says; a
 * CRM behind the guesser's NAT keeps working; a pinned consumer cannot pick another context; a
 * look-alike username is refused.
 */
import { createHash } from 'node:crypto'
import { createServer, request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { startUsersEmulator } from '../helpers/emulator.js'
import { makePolicy, PERMISSIVE_DEFAULT, startGateway } from '../helpers/gateway.js'
import { startRedis } from '../helpers/redis-server.js'

const CRM_KEY = 'gk_test_crm_key_0123456789'
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex')

/** A pass-through proxy in front of `target` that counts the requests reaching it. */
async function countingProxy(t: Test, target: string): Promise<{ url: string; count: () => number }> {
  const to = new URL(target)
  let count = 0
  const server = createServer((req, res) => {
    count += 1
    const up = httpRequest(
      { host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers)
        r.pipe(res)
      },
    )
    up.on('error', () => res.destroy())
    req.pipe(up)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  t.teardown(() => new Promise<void>((r) => server.close(() => r())))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, count: () => count }
}

async function setup(t: Test, gateway: Record<string, unknown> = {}, instances = 1, redisUrl?: string) {
  const emu = await startUsersEmulator(t, { crm: 'crm-token-good', demo: 'demo-token' }, 3)
  const proxy = await countingProxy(t, emu.url)
  const policy = await makePolicy(t, {
    gateway: { auth: { failureLimit: { max: 5, timeWindow: '1 minute' } }, ...gateway },
    consumers: {
      default: PERMISSIVE_DEFAULT,
      crm: {
        keys: [sha256(CRM_KEY)],
        upstream: { username: 'crm', tokenEnv: 'CRM_TOKEN', contexts: ['default'] },
        operations: { customers: ['list', 'read'] },
      },
      ops: { usernames: ['ops'], operations: { customers: ['list'] } },
    },
    env: { CRM_TOKEN: 'crm-token-good' },
  })
  const gws = []
  for (let i = 0; i < instances; i++) {
    gws.push(
      await startGateway(t, {
        policy,
        upstreamUrl: proxy.url,
        ...(redisUrl ? { redisUrl, instanceId: `i${i}` } : {}),
      }),
    )
  }
  return { gws, proxy }
}

const guess = (url: string, i: number) =>
  fetch(`${url}/api/ipdrcustomers`, {
    headers: { authorization: `Bearer wrong-${i}`, 'x-trisul-username': 'demo' },
  })

t.test('200 parallel wrong tokens against a budget of 5: at most 5 reach Trisul', async (t) => {
  const { gws, proxy } = await setup(t)
  const url = gws[0]?.url as string
  const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => guess(url, i)))
  const statuses = answers.map((r) => r.status)
  t.ok(proxy.count() <= 5, `${proxy.count()} guesses reached Trisul`)
  t.equal(statuses.filter((s) => s === 401).length, proxy.count(), 'each of them a 401')
  t.equal(statuses.filter((s) => s === 429).length, 200 - proxy.count(), 'the rest 429 before any work')
})

t.test('the same attack on two instances sharing Redis: at most 5 in all', async (t) => {
  const redis = await startRedis(t)
  const { gws, proxy } = await setup(t, {}, 2, redis.url)
  const answers = await Promise.all(
    Array.from({ length: 200 }, (_, i) => guess((gws[i % 2]?.url as string) ?? '', i)),
  )
  t.ok(proxy.count() <= 5, `${proxy.count()} guesses reached Trisul`)
  t.equal(answers.filter((r) => r.status === 429).length, 200 - proxy.count())
})

t.test('with normalizeErrors false, the invalid-token envelope still counts as a failure', async (t) => {
  const { gws, proxy } = await setup(t, { upstream: { normalizeErrors: false } })
  const url = gws[0]?.url as string
  for (let i = 0; i < 5; i++) {
    const r = await guess(url, i)
    t.equal(r.status, 200, 'the envelope passes through as Trisul sent it')
    t.match(await r.json(), { status: 'ERROR', message: 'Invalid API token' })
  }
  t.equal((await guess(url, 99)).status, 429, 'the sixth guess is refused')
  t.equal(proxy.count(), 5)
})

t.test('NAT: a guesser blocks its address, not the CRM behind the same address', async (t) => {
  const { gws } = await setup(t)
  const url = gws[0]?.url as string
  // The Trisul-token CRM proves its credentials once.
  const trisulCrm = { authorization: 'Bearer crm-token-good', 'x-trisul-username': 'crm' }
  t.equal((await fetch(`${url}/api/ipdrcustomers`, { headers: trisulCrm })).status, 200)
  for (let i = 0; i < 8; i++) await guess(url, i)
  t.equal((await guess(url, 100)).status, 429, 'the address is blocked for guesses')
  t.equal(
    (await fetch(`${url}/api/ipdrcustomers`, { headers: { authorization: `Bearer ${CRM_KEY}` } })).status,
    200,
    'a gateway key that matches is not refused',
  )
  t.equal(
    (await fetch(`${url}/api/ipdrcustomers`, { headers: trisulCrm })).status,
    200,
    'a Trisul token Trisul accepted lately is not refused',
  )
  t.equal(
    (await fetch(`${url}/api/ipdrcustomers?limit=1`, { headers: trisulCrm })).status,
    200,
    'on the route as on the cached hit',
  )
})

t.test('a CRM burst of cold requests with the same new credentials is one charge, not many', async (t) => {
  const { gws, proxy } = await setup(t)
  const url = gws[0]?.url as string
  const headers = { authorization: 'Bearer demo-token', 'x-trisul-username': 'demo' }
  const answers = await Promise.all(
    Array.from({ length: 30 }, () => fetch(`${url}/api/ipdrcustomers`, { headers })),
  )
  t.same([...new Set(answers.map((r) => r.status))], [200], 'all 30 answered')
  t.equal(proxy.count(), 1, 'one listing fetch for all')
})

t.test('upstream.contexts pins a consumer to its contexts', async (t) => {
  const { gws, proxy } = await setup(t)
  const url = gws[0]?.url as string
  const key = { authorization: `Bearer ${CRM_KEY}` }
  t.equal((await fetch(`${url}/api/ipdrcustomers`, { headers: key })).status, 200)
  const before = proxy.count()
  const other = await fetch(`${url}/api/ipdrcustomers`, { headers: { ...key, 'x-trisul-context': 'ipdr' } })
  t.equal(other.status, 403)
  t.match(await other.json(), { code: 'IPDR_GW_CONTEXT_FORBIDDEN' })
  t.equal(proxy.count(), before, 'never reached Trisul')
  t.equal(
    (await fetch(`${url}/api/ipdrcustomers`, { headers: { ...key, 'x-trisul-context': 'default' } })).status,
    200,
    'an allowed context passes',
  )
})

t.test(
  'a username that matches a consumer only when case or Unicode form is ignored is refused',
  async (t) => {
    const { gws, proxy } = await setup(t)
    const url = gws[0]?.url as string
    for (const lookalike of ['OPS', 'Ops', 'ｏｐｓ']) {
      const basic = Buffer.from(`${lookalike}:some-token`).toString('base64')
      const r = await fetch(`${url}/api/ipdrcustomers`, { headers: { authorization: `Basic ${basic}` } })
      t.equal(r.status, 401, `${lookalike}: refused, not given the default consumer's rules`)
    }
    t.equal(proxy.count(), 0, 'none reached Trisul')
  },
)

t.test('a guess whose client went away does not leave its credentials riding uncharged', async (t) => {
  const { startRecordingUpstream } = await import('../helpers/recording-upstream.js')
  let first = true
  const upstream = await startRecordingUpstream(() => {
    if (first) {
      first = false
      return { kind: 'hang' }
    }
    return { kind: 'json', body: { status: 'ERROR', message: 'Invalid API token' } }
  })
  t.teardown(() => upstream.close())
  const policy = await makePolicy(t, {
    gateway: { auth: { failureLimit: { max: 5, timeWindow: '1 minute' } } },
  })
  const gw = await startGateway(t, { policy, upstreamUrl: upstream.url })
  const headers = { authorization: 'Bearer same-wrong-token', 'x-trisul-username': 'demo' }
  const abandoned = new AbortController()
  const gone = fetch(`${gw.url}/api/ipdrcustomers`, { headers, signal: abandoned.signal }).catch(() => null)
  while (upstream.requests.length === 0) await new Promise((r) => setTimeout(r, 10))
  abandoned.abort()
  await gone
  await new Promise((r) => setTimeout(r, 100))
  const statuses: number[] = []
  for (let i = 0; i < 8; i++) statuses.push((await fetch(`${gw.url}/api/ipdrcustomers`, { headers })).status)
  t.ok(statuses.includes(429), `the same wrong token is charged again and blocked (${statuses.join(', ')})`)
})

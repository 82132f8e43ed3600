// PolicyStore: reload, atomic swap, invalid reloads, debounced watching.
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { loadPolicy } from '../../src/policy/load.js'
import { PolicyStore } from '../../src/policy/store.js'
import type { Policy } from '../../src/policy/types.js'
import { CRM_YAML, DEFAULT_YAML, ENV, policyDir } from './fixtures.js'

interface LogLine {
  level: 'info' | 'warn' | 'error'
  o: object
  m?: string
}

async function setup(t: Test, files: Record<string, string>) {
  const dir = policyDir(t, files)
  const first = await loadPolicy(dir, ENV)
  if (!first.ok) throw new Error(first.problems.join('\n'))
  const logs: LogLine[] = []
  const reloads: Array<['ok' | 'invalid', string[]]> = []
  const waiters: Array<() => void> = []
  const store = new PolicyStore({
    dir,
    env: ENV,
    initial: first.policy,
    debounceMs: 20,
    logger: {
      info: (o, m) => logs.push({ level: 'info', o, m }),
      warn: (o, m) => logs.push({ level: 'warn', o, m }),
      error: (o, m) => logs.push({ level: 'error', o, m }),
    },
    onReload: (result, problems) => {
      reloads.push([result, problems])
      for (const w of waiters.splice(0)) w()
    },
  })
  t.teardown(() => store.close())
  /** Resolves at the next onReload, or rejects after a generous bound (never expected). */
  const nextReload = () =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no reload within 10 s')), 10_000)
      waiters.push(() => {
        clearTimeout(timer)
        resolve()
      })
    })
  return { dir, store, logs, reloads, nextReload, initial: first.policy }
}

t.test('a valid reload swaps the policy; a request keeps the object it read', async (t) => {
  const { dir, store, reloads, logs, initial } = await setup(t, { 'consumers/default.yaml': DEFAULT_YAML })
  const inFlight: Policy = store.current
  t.equal(inFlight, initial)
  writeFileSync(join(dir, 'consumers', 'crm.yaml'), CRM_YAML)
  const result = await store.reload()
  t.ok(result.ok)
  t.not(store.current, initial, 'new requests see the new policy')
  t.same(
    store.current.consumers.map((c) => c.name),
    ['crm', 'default'],
  )
  t.same(
    inFlight.consumers.map((c) => c.name),
    ['default'],
    'the old object is untouched (frozen)',
  )
  t.same(reloads, [['ok', []]])
  t.match(logs.at(-1), { level: 'info', m: 'policy reloaded', o: { policyVersion: store.current.version } })
})

t.test('an invalid reload keeps the old policy and reports every problem', async (t) => {
  const { dir, store, reloads, logs, initial } = await setup(t, {})
  writeFileSync(join(dir, 'gateway.yaml'), 'cache: { ttlSeconds: x }\nrateLimit: { max: 0 }\n')
  const result = await store.reload()
  t.equal(result.ok, false)
  t.equal(store.current, initial)
  const problems = [
    `${dir}/gateway.yaml: cache.ttlSeconds: must be an integer`,
    `${dir}/gateway.yaml: rateLimit.max: must be >= 1`,
  ]
  t.same(reloads, [['invalid', problems]])
  t.match(logs.at(-1), { level: 'error', o: { problems, policyVersion: initial.version } })
  t.match(logs.at(-1)?.m, /rejected \(2 problems\); keeping version/)
})

t.test('unchanged files keep the same object; a fix after an invalid reload is reported', async (t) => {
  const { dir, store, reloads, initial } = await setup(t, {})
  const same = await store.reload()
  t.ok(same.ok)
  t.equal(store.current, initial, 'same version: same object')
  writeFileSync(join(dir, 'gateway.yaml'), 'nope: 1\n')
  await store.reload()
  writeFileSync(join(dir, 'gateway.yaml'), '')
  await store.reload()
  t.equal(store.current, initial)
  t.same(
    reloads.map((r) => r[0]),
    ['ok', 'invalid', 'ok'],
  )
})

t.test('concurrent reloads do not overlap and share a queued run', async (t) => {
  const { dir, store } = await setup(t, {})
  writeFileSync(join(dir, 'gateway.yaml'), 'cache: { ttlSeconds: 7 }\n')
  const a = store.reload()
  const b = store.reload()
  const c = store.reload()
  t.equal(b, c, 'calls made while one is queued share it')
  const results = await Promise.all([a, b, c])
  t.ok(results.every((r) => r.ok))
  t.equal(store.current.gateway.cache.ttlSeconds, 7)
})

t.test('a trustProxy change is logged as needing a restart', async (t) => {
  const { dir, store, logs } = await setup(t, {})
  writeFileSync(join(dir, 'gateway.yaml'), 'trustProxy: [10.0.0.1]\n')
  await store.reload()
  t.ok(logs.some((l) => l.level === 'warn' && /restart/.test(l.m ?? '')))
})

t.test('watch: a change of the files reloads once, debounced', async (t) => {
  const { dir, store, reloads, nextReload } = await setup(t, { 'consumers/default.yaml': DEFAULT_YAML })
  store.watch()
  store.watch() // idempotent
  const next = nextReload()
  // Several writes in a burst: one reload after the quiet period.
  writeFileSync(join(dir, 'consumers', 'crm.yaml'), CRM_YAML)
  writeFileSync(join(dir, 'gateway.yaml'), 'cache: { ttlSeconds: 9 }\n')
  await next
  t.equal(store.current.gateway.cache.ttlSeconds, 9)
  t.same(
    store.current.consumers.map((c) => c.name),
    ['crm', 'default'],
  )
  t.ok(reloads.length >= 1)
})

t.test('watch: editors that write a temp file and rename it over the original', async (t) => {
  const { dir, store, nextReload } = await setup(t, {})
  store.watch()
  let next = nextReload()
  writeFileSync(join(dir, '.gateway.yaml.tmp'), 'cache: { ttlSeconds: 11 }\n')
  renameSync(join(dir, '.gateway.yaml.tmp'), join(dir, 'gateway.yaml'))
  await next
  t.equal(store.current.gateway.cache.ttlSeconds, 11)
  // Again: the directory watch survives the replaced inode.
  next = nextReload()
  writeFileSync(join(dir, '.gateway.yaml.tmp'), 'cache: { ttlSeconds: 12 }\n')
  renameSync(join(dir, '.gateway.yaml.tmp'), join(dir, 'gateway.yaml'))
  await next
  t.equal(store.current.gateway.cache.ttlSeconds, 12)
})

t.test('watch: a consumers directory created later is watched too', async (t) => {
  const { dir, store, nextReload } = await setup(t, {})
  store.watch()
  let next = nextReload()
  mkdirSync(join(dir, 'consumers'))
  writeFileSync(join(dir, 'consumers', 'default.yaml'), DEFAULT_YAML)
  await next
  t.same(
    store.current.consumers.map((c) => c.name),
    ['default'],
  )
  // Only a watcher on the new consumers directory sees this one.
  next = nextReload()
  writeFileSync(join(dir, 'consumers', 'crm.yaml'), CRM_YAML)
  await next
  t.same(
    store.current.consumers.map((c) => c.name),
    ['crm', 'default'],
  )
  next = nextReload()
  rmSync(join(dir, 'consumers'), { recursive: true })
  await next
  t.same(store.current.consumers, [])
})

t.test('watch: an invalid edit is rejected, the fix is picked up', async (t) => {
  const { dir, store, reloads, nextReload, initial } = await setup(t, {})
  store.watch()
  let next = nextReload()
  writeFileSync(join(dir, 'gateway.yaml'), 'cache: [\n')
  await next
  t.equal(store.current, initial)
  t.equal(reloads.at(-1)?.[0], 'invalid')
  next = nextReload()
  writeFileSync(join(dir, 'gateway.yaml'), 'cache: { ttlSeconds: 3 }\n')
  await next
  t.equal(reloads.at(-1)?.[0], 'ok')
  t.equal(store.current.gateway.cache.ttlSeconds, 3)
})

t.test('close stops watching; a reload still works after', async (t) => {
  const { dir, store, reloads } = await setup(t, {})
  store.watch()
  store.close()
  store.watch() // no effect once closed
  writeFileSync(join(dir, 'gateway.yaml'), 'cache: { ttlSeconds: 4 }\n')
  // Nothing to wait for: no watcher is left. An explicit reload still works.
  const r = await store.reload()
  t.ok(r.ok)
  t.equal(store.current.gateway.cache.ttlSeconds, 4)
  t.equal(reloads.length, 1)
})

t.test('watching a directory that disappeared logs nothing alarming and keeps the policy', async (t) => {
  const { dir, store, initial } = await setup(t, {})
  rmSync(dir, { recursive: true })
  store.watch()
  const r = await store.reload()
  t.equal(r.ok, false)
  t.equal(store.current, initial)
})

t.test('a store without logger or callback', async (t) => {
  const dir = policyDir(t, {})
  const first = await loadPolicy(dir, ENV)
  if (!first.ok) throw new Error('invalid')
  const store = new PolicyStore({ dir, env: ENV, initial: first.policy })
  writeFileSync(join(dir, 'gateway.yaml'), 'x: 1\n')
  t.equal((await store.reload()).ok, false)
  writeFileSync(join(dir, 'gateway.yaml'), 'cache: { ttlSeconds: 1 }\n')
  t.equal((await store.reload()).ok, true)
  store.close()
})

/**
 * The line format and the chain verifier (src/audit/chain.ts): an intact
 * chain passes; an edited, a deleted and a reordered line each fail, named;
 * a torn last line is reported as such, and a torn line closed by its repair
 * line passes.
 */
import fc from 'fast-check'
import t from 'tap'
import {
  ChainVerifier,
  formatLine,
  formatRecord,
  GENESIS,
  lineHash,
  parseLine,
} from '../../src/audit/chain.js'

function chain(n: number): string[] {
  const lines: string[] = []
  let prev = GENESIS
  for (let seq = 1; seq <= n; seq++) {
    const line = formatLine(seq, prev, { phase: seq % 2 ? 'intent' : 'outcome', UserID: `U${seq}` })
    lines.push(line)
    prev = lineHash(line)
  }
  return lines
}

function check(lines: string[], opts: { lastTerminated?: boolean; partial?: boolean } = {}) {
  const v = new ChainVerifier({ partial: opts.partial === true })
  v.startFile('a.jsonl')
  for (const [i, l] of lines.entries())
    v.line(Buffer.from(l), i < lines.length - 1 || opts.lastTerminated !== false)
  return { problem: v.finish(), head: v.head }
}

t.test('a line starts with seq and prev and keeps the other fields', async (t) => {
  const line = formatLine(3, 'a'.repeat(64), {
    seq: 99,
    prev: 'x',
    phase: 'intent',
    fields: { Name: 'A "q"\n' },
  })
  t.match(line, /^\{"seq":3,"prev":"a{64}","phase":"intent",/)
  t.notOk(line.includes('\n'), 'one line whatever the values')
  t.same(parseLine(Buffer.from(line))?.record, {
    seq: 3,
    prev: 'a'.repeat(64),
    phase: 'intent',
    fields: { Name: 'A "q"\n' },
  })
  t.equal(formatLine(1, GENESIS, {}), `{"seq":1,"prev":"${GENESIS}"}`)
})

t.test('an intact chain passes; its head is the last line', async (t) => {
  const lines = chain(6)
  const { problem, head } = check(lines)
  t.equal(problem, null)
  t.same(head, { seq: 6, hash: lineHash(lines[5] as string) })
})

t.test('an edited line is named', async (t) => {
  const lines = chain(6)
  lines[2] = (lines[2] as string).replace('"U3"', '"U9"')
  const { problem } = check(lines)
  t.equal(problem?.line, 4, 'the line after the edit no longer chains')
  t.match(problem?.message, /prev is not the hash/)
  t.equal(problem?.tornTail, false)
})

t.test('a deleted line is named', async (t) => {
  const lines = chain(6)
  lines.splice(3, 1)
  t.equal(check(lines).problem?.line, 4)
})

t.test('reordered lines are named', async (t) => {
  const lines = chain(6)
  ;[lines[1], lines[2]] = [lines[2] as string, lines[1] as string]
  t.equal(check(lines).problem?.line, 2)
})

t.test('a truncated start is named unless partial', async (t) => {
  const lines = chain(6).slice(2)
  t.match(check(lines).problem, { line: 1, message: /does not start here/ })
  t.equal(check(lines, { partial: true }).problem, null)
})

t.test('a torn last line is a torn tail; the lines before it are intact', async (t) => {
  const lines = chain(5)
  const torn = [...lines.slice(0, 4), (lines[4] as string).slice(0, 30)]
  const { problem, head } = check(torn, { lastTerminated: false })
  t.match(problem, { line: 5, tornTail: true, message: /torn/ })
  t.equal(head.seq, 4)
})

t.test('a torn line closed by a repair line passes; one without it, or a foreign one, fails', async (t) => {
  const lines = chain(4)
  const fragment = formatLine(5, lineHash(lines[3] as string), { phase: 'intent', UserID: 'U5' }).slice(0, 40)
  const repair = formatLine(5, lineHash(fragment), { phase: 'repair', torn: { bytes: 40 } })
  const after = formatLine(6, lineHash(repair), { phase: 'intent' })
  t.equal(check([...lines, fragment, repair, after]).problem, null, 'repaired')
  t.match(check([...lines, fragment, after]).problem, { line: 5, tornTail: false }, 'not repaired')
  const foreign = 'garbage that was never a line'
  const repairForeign = formatLine(5, lineHash(foreign), { phase: 'repair' })
  t.match(check([...lines, foreign, repairForeign]).problem, { line: 5, message: /not an audit record/ })
})

t.test('formatRecord makes the bytes formatLine makes of the merged record, whatever the keys', async (t) => {
  const key = fc.oneof(
    fc.constantFrom('seq', 'prev', 'time', 'instance', 'phase', '0', '17', '__proto__', 'UserID'),
    fc.string({ maxLength: 6 }),
  )
  const fields = fc.dictionary(key, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 8 })
  fc.assert(
    fc.property(fc.nat(), fields, fc.string(), (seq, f, instance) => {
      const time = '2026-12-05T06:00:00.000Z'
      const merged = formatLine(seq + 1, GENESIS, { time, instance, ...f })
      return formatRecord(seq + 1, GENESIS, time, instance, f) === merged
    }),
    { numRuns: 2000 },
  )
  t.pass('2000 records')
})

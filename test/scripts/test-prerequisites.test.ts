// What `npm test` installs or names before it runs (scripts/test-prerequisites.mjs), and that the
// README names the same packages.
import { readFileSync } from 'node:fs'
import t from 'tap'
// @ts-expect-error: a plain .mjs script, without types
import { missingPrerequisites, PREREQUISITES } from '../../scripts/test-prerequisites.mjs'

interface Prerequisite {
  command: string
  pkg: string
}

t.test('each missing command is named with its Debian package; the README lists them all', async (t) => {
  const all = PREREQUISITES as Prerequisite[]
  t.same(
    all.map((p) => p.command),
    ['promtool', 'chromium', 'openssl', 'redis-server', 'rsyslogd', 'curl'],
  )
  t.same(
    missingPrerequisites(() => true),
    [],
    'nothing missing',
  )
  const missing = missingPrerequisites((command: string) => command !== 'redis-server') as Prerequisite[]
  t.same(
    missing.map((p) => p.pkg),
    ['redis-server'],
  )
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
  t.ok(readme.includes(all.map((p) => p.pkg).join(' ')), 'the README names the same packages')
  t.ok(missingPrerequisites().length === 0, 'this machine has them (npm test installed what was missing)')
})

// docs/policies.md and the schema cannot drift: every key has a row with the
// schema's default, every row is a key, and each file's example is valid and
// sets every key.
import { readFileSync } from 'node:fs'
import Ajv2020 from 'ajv/dist/2020.js'
import t from 'tap'
import { parse as parseYaml } from 'yaml'
import { policyJsonSchema } from '../../src/policy/schema.js'

type Schema = Record<string, unknown>

interface KeyFact {
  readonly path: string
  readonly leaf: boolean
  readonly hasDefault: boolean
  readonly default?: unknown
}

function keysOf(schema: Schema, prefix = ''): KeyFact[] {
  const out: KeyFact[] = []
  for (const [name, sub] of Object.entries((schema.properties as Record<string, Schema>) ?? {})) {
    const path = prefix ? `${prefix}.${name}` : name
    const leaf = sub.properties === undefined
    out.push({ path, leaf, hasDefault: Object.hasOwn(sub, 'default'), default: sub.default })
    if (!leaf) out.push(...keysOf(sub, path))
  }
  return out
}

function leafPathsOf(value: unknown, prefix = ''): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [prefix]
  return Object.entries(value).flatMap(([k, v]) => leafPathsOf(v, prefix ? `${prefix}.${k}` : k))
}

const doc = readFileSync(new URL('../../docs/policies.md', import.meta.url), 'utf8')
const schema = policyJsonSchema()
const defs = schema.$defs as Record<string, Schema>

function section(heading: string): string {
  const start = doc.indexOf(`\n## ${heading}\n`)
  if (start === -1) throw new Error(`docs/policies.md has no "## ${heading}" section`)
  const end = doc.indexOf('\n## ', start + 1)
  return doc.slice(start, end === -1 ? undefined : end)
}

const ROW = /^\| `([^`]+)` \| ([^|]+(?:\\\|[^|]+)*) \| ([^|]+) \| (.+) \|$/

for (const [def, heading] of [
  ['gateway', '`gateway.yaml`'],
  ['consumer', '`consumers/NAME.yaml`'],
] as const) {
  t.test(`${def}: the key table matches the schema`, async (t) => {
    const text = section(heading)
    const keys = keysOf(defs[def]!)
    const rows = new Map<string, string>()
    for (const line of text.split('\n')) {
      const m = ROW.exec(line)
      if (m) rows.set(m[1]!, m[3]!.trim())
    }
    for (const key of keys.filter((k) => k.leaf)) {
      t.ok(rows.has(key.path), `${key.path} has a row`)
    }
    for (const [path, defaultCell] of rows) {
      const key = keys.find((k) => k.path === path)
      t.ok(key, `the row ${path} is a key of the schema`)
      if (!key) continue
      if (key.hasDefault) {
        t.equal(
          defaultCell,
          `\`${JSON.stringify(key.default)}\``,
          `${path}: the documented default is the schema's`,
        )
      } else {
        t.notMatch(defaultCell, /^`/, `${path}: no default in the schema, none documented`)
      }
    }
  })

  t.test(`${def}: the example is valid and sets every key`, async (t) => {
    const text = section(heading)
    const m = /```yaml\n([\s\S]*?)```/.exec(text)
    t.ok(m, 'an example')
    const example = parseYaml(m?.[1] ?? '') as unknown
    const ajv = new Ajv2020.default({ allErrors: true, allowUnionTypes: true })
    ajv.addSchema(schema)
    const validate = ajv.getSchema(`${schema.$id as string}#/$defs/${def}`)!
    t.ok(validate(example), JSON.stringify(validate.errors))
    const set = new Set(leafPathsOf(example))
    for (const key of keysOf(defs[def]!).filter((k) => k.leaf)) {
      t.ok(set.has(key.path), `the example sets ${key.path}`)
    }
  })
}

t.test('every schema property path appears in the doc', async (t) => {
  for (const def of ['gateway', 'consumer'] as const) {
    for (const key of keysOf(defs[def]!)) {
      t.ok(doc.includes(`\`${key.path}\``), `\`${key.path}\` is documented`)
    }
  }
})

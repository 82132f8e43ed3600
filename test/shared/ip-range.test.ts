import t from 'tap'
import { formatIpRange, parseIpRange, rangeContains, rangesOverlap } from '../../src/shared/ip-range.js'

t.test('parsing', async (t) => {
  const r = parseIpRange('192.168.1.23/24')!
  t.equal(formatIpRange(r), '192.168.1.0/24', 'host bits dropped')
  t.equal(r.version, 4)
  t.equal(formatIpRange(parseIpRange('172.27.19.224')!), '172.27.19.224')
  t.equal(formatIpRange(parseIpRange('2001:db8::1/32')!), '2001:db8::/32')
  t.equal(formatIpRange(parseIpRange('::ffff:10.0.0.1')!), '10.0.0.1', 'IPv4-mapped is IPv4')
  for (const bad of [
    '',
    ' 10.0.0.1',
    '10.0.0.256',
    '10.0.0.1/33',
    '10.0.0.1/',
    '10.0.0.1/x',
    '010.0.0.1',
    '10.0.0.01',
    '1',
    '0x1.2.3.4',
    'fe80::1%eth0',
    '2001:db8::/129',
    'x'.repeat(100),
    'a.b.c.d',
  ]) {
    t.equal(parseIpRange(bad), null, JSON.stringify(bad))
  }
  t.equal(parseIpRange(5 as unknown as string), null)
})

t.test('overlap and containment', async (t) => {
  const p = (s: string) => parseIpRange(s)!
  t.ok(rangesOverlap(p('10.0.0.0/8'), p('10.1.2.3')))
  t.ok(rangeContains(p('10.0.0.0/8'), p('10.1.2.0/24')))
  t.notOk(rangeContains(p('10.1.2.0/24'), p('10.0.0.0/8')))
  t.notOk(rangesOverlap(p('10.0.0.0/24'), p('10.0.1.0/24')))
  t.notOk(rangesOverlap(p('::a00:1'), p('10.0.0.1')), 'families never overlap')
  t.ok(rangesOverlap(p('2001:db8::/32'), p('2001:db8:1::5')))
})

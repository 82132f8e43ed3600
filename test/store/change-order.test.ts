/**
 * When a write may be applied rather than dropped (src/store/change-order.ts): only when no write of
 * the same customers crossed it, as seen from here and in the order of the announcements.
 */
import t from 'tap'
import { ChangeOrder, REMEMBERED_WRITES } from '../../src/store/change-order.js'

t.test('writes in flight at once on the same customers cross; on others they do not', async (t) => {
  const order = new ChangeOrder()
  const a = order.begin('ctx', ['U1'])
  const b = order.begin('ctx', ['U2', 'U1'])
  const c = order.begin('ctx', ['U3'])
  const d = order.begin('other', ['U1'])
  t.equal(order.settle(a), false)
  t.equal(order.settle(b), false)
  t.equal(order.settle(c), true)
  t.equal(order.settle(d), true, 'another context')
  const e = order.begin('ctx', ['U1'])
  t.equal(order.settle(e), true, 'a write after both is alone again')
})

t.test('an announcement of the same customers seen since the write was sent crosses it', async (t) => {
  const order = new ChangeOrder()
  order.caughtUp(10)
  const w = order.begin('ctx', ['U1'])
  t.equal(w.after, 10)
  order.record(11, 'ctx', ['U1'])
  t.equal(order.settle(w), false)
  const v = order.begin('ctx', ['U1'])
  order.record(12, 'ctx', ['U9'])
  order.record(13, 'ctx', null)
  t.equal(order.settle(v), false, 'an announcement without its keys meets every write')
})

t.test('clean: every announcement in between known and on other customers', async (t) => {
  const order = new ChangeOrder()
  order.record(5, 'ctx', ['U1'])
  order.record(6, 'ctx', ['U2'])
  t.equal(order.clean(4, 7, 'ctx', ['U3']), true)
  t.equal(order.clean(4, 7, 'ctx', ['U2']), false)
  t.equal(order.clean(4, 7, 'x', ['U2']), true)
  t.equal(order.clean(4, 9, 'ctx', ['U3']), false, 'seq 7 and 8 unknown here')
  t.equal(order.clean(6, 7, 'ctx', ['U1']), true, 'nothing in between')
  t.equal(order.clean(0, REMEMBERED_WRITES + 2, 'ctx', ['U3']), false, 'more than is remembered')
})

t.test('arrived: in order only when nothing was missed', async (t) => {
  const order = new ChangeOrder()
  t.equal(order.arrived(3), false, 'before the first catch-up nothing is known')
  order.caughtUp(3)
  t.equal(order.arrived(4), true)
  t.equal(order.arrived(6), false, 'a gap')
  t.equal(order.arrived(5), false, 'late')
  t.equal(order.arrived(7), true)
  order.caughtUp(9)
  t.equal(order.arrived(10), true)
})

t.test('local numbering and the memory bound', async (t) => {
  const order = new ChangeOrder()
  for (let i = 0; i < REMEMBERED_WRITES + 50; i++) order.recordLocal('ctx', [`U${i}`])
  t.equal(order.highest, REMEMBERED_WRITES + 49)
  const w = order.begin('ctx', ['U0'])
  t.equal(order.settle(w), true, 'old announcements are forgotten, never unknown inside the window')
})

import { it } from 'vitest'
import { ProbeScheduler } from '../../../src/probe/scheduler.ts'
import type { ProbeTarget } from '../../../src/probe/types.ts'
it('cost', async () => {
  // Real timers, noop check, measure CPU per probe of the scheduler alone over 10 s at 2000/s.
  const store = { writeProbes: async () => {} }
  const s = new ProbeScheduler({ vantage: 'v', prober: 'p', store, run: () => Promise.resolve({ ok: true, latencyMs: 1, error: undefined, load: undefined }) })
  const ts: ProbeTarget[] = Array.from({ length: 10000 }, (_, i) => ({ id: `z|${i}`, zone: 'z', endpoint: `${i}`, address: '127.0.0.1', check: { kind: 'tcp', name: 'c', intervalMs: 5000, jitter: 0.1, timeoutMs: 2000, rise: 2, fall: 3, address: undefined, port: 1 } }))
  s.setTargets(ts)
  await new Promise((r) => setTimeout(r, 11000))
  const c0 = process.cpuUsage(); const p0 = s.stats().probesDone; const t0 = performance.now()
  await new Promise((r) => setTimeout(r, 8000))
  const c = process.cpuUsage(c0); const p = s.stats().probesDone - p0
  console.log('probes', p, 'us/probe', ((c.user + c.system) / p).toFixed(1), 'cpu%', ((c.user + c.system) / 10 / (performance.now() - t0)).toFixed(2), s.stats())
  await s.stop()
}, 40000)

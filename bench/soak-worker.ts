/**
 * A worker process of the soak bench (bench/soak.ts): an rvx runtime Worker on default settings with a no-op
 * handler that notes each task's dispatch time (its start minus the moment it was enqueued, in its payload) and
 * sequence number. On "sample" (IPC) it sends what it noted since the last one, with its RSS, and forgets it.
 */
import {TaskRegistry, Worker} from '../src/runtime/index.js'
import {Histogram} from './histogram.js'

if (!process.send) throw new Error('bench/soak-worker.ts runs under bench/soak.ts, with an IPC channel')
let histogram = new Histogram()
let seqs: number[] = []
const registry = new TaskRegistry().register<{at: number; seq: number}>('soak', async (task) => {
  if (task.payload.at > 0) histogram.add(Date.now() - task.payload.at)
  seqs.push(task.payload.seq)
})
const worker = new Worker({
  databaseUrl: process.env.DATABASE_URL!,
  registry,
  id: process.env.WORKER_ID,
  concurrency: Number(process.env.WORKER_CONCURRENCY ?? 16),
})

process.on('message', (message: string) => {
  if (message === 'sample') {
    process.send!({histogram: histogram.toJSON(), seqs, rss: process.memoryUsage().rss})
    histogram = new Histogram()
    seqs = []
  } else if (message === 'stop') worker.stop()
})
process.on('SIGTERM', () => worker.stop())
await worker.start()
process.exit(0)

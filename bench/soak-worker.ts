/**
 * A worker process of the soak bench (bench/soak.ts): an rvx runtime Worker on default settings with a no-op
 * handler that notes each task's dispatch time (its start minus the moment it was enqueued, in its payload) and
 * sequence number. On "sample" (IPC) it sends what it noted since the last one, with its RSS, and forgets it.
 *
 * RSS is read every second and sent as the median and the largest of the interval's readings: one reading lands
 * anywhere in a garbage collector's cycle (the same idle worker reads 124 to 165 MB a few seconds apart), so a
 * single reading a minute says more about when it was taken than about whether memory grows.
 */
import {TaskRegistry, Worker} from '../src/runtime/index.js'
import {Histogram} from './histogram.js'

if (!process.send) throw new Error('bench/soak-worker.ts runs under bench/soak.ts, with an IPC channel')
let histogram = new Histogram()
let seqs: number[] = []
let rss: number[] = []
const readRss = setInterval(() => rss.push(process.memoryUsage().rss), 1000)
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
    const sorted = [...rss, process.memoryUsage().rss].sort((a, b) => a - b)
    process.send!({histogram: histogram.toJSON(), seqs, rss: sorted[Math.floor(sorted.length / 2)], rssMax: sorted.at(-1)})
    histogram = new Histogram()
    seqs = []
    rss = []
  } else if (message === 'stop') worker.stop()
})
process.on('SIGTERM', () => worker.stop())
await worker.start()
clearInterval(readRss)
process.exit(0)

/** A worker process on default settings that holds long 'sleep' tasks until it is SIGKILLed (bench (c)). */
import {sleep, TaskRegistry, Worker} from '../src/runtime/index.js'

const registry = new TaskRegistry().register<{ms: number}>('sleep', async (task, ctx) => {
  await sleep(task.payload.ms, ctx.signal)
})
const worker = new Worker({databaseUrl: process.env.DATABASE_URL!, registry, id: process.env.WORKER_ID, scope: process.env.WORKER_SCOPE, concurrency: 1})
process.on('SIGTERM', () => worker.stop())
await worker.start()
process.exit(0)

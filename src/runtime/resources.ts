import {execFile} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'

/** What a worker reports about its machine in every heartbeat (workers.resource_metrics). */
export interface ResourceMetrics {
  cpu_percent: number
  cpu_cores_physical: number
  cpu_cores_available: number
  cpu_load_1min: number
  cpu_load_5min: number
  memory_percent: number
  memory_available_gb: number
  memory_total_gb: number
  gpu_vram_total_gb: number
  gpu_vram_available_gb: number
  gpu_type: string
  sampled_at: string
}

const GB = 1024 ** 3
const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits

/** Samples CPU use as the change since the previous sample; GPU via nvidia-smi when it exists. */
export class ResourceSampler {
  private lastCpu = cpuTimes()
  private gpuMissing = false
  private readonly physicalCores = physicalCoreCount()

  async sample(): Promise<ResourceMetrics> {
    const now = cpuTimes()
    const busy = now.busy - this.lastCpu.busy
    const total = now.total - this.lastCpu.total
    this.lastCpu = now
    const [load1, load5] = os.loadavg()
    const {available, total: memTotal} = memory()
    const gpu = await this.gpu()
    return {
      cpu_percent: total > 0 ? round((busy / total) * 100, 1) : 0,
      cpu_cores_physical: this.physicalCores,
      cpu_cores_available: os.availableParallelism(),
      cpu_load_1min: round(load1),
      cpu_load_5min: round(load5),
      memory_percent: round(((memTotal - available) / memTotal) * 100, 1),
      memory_available_gb: round(available / GB),
      memory_total_gb: round(memTotal / GB),
      gpu_vram_total_gb: gpu.total,
      gpu_vram_available_gb: gpu.available,
      gpu_type: gpu.type,
      sampled_at: new Date().toISOString(),
    }
  }

  private async gpu(): Promise<{total: number; available: number; type: string}> {
    const none = {total: 0, available: 0, type: 'none'}
    if (this.gpuMissing) return none
    return new Promise((resolve) => {
      execFile('nvidia-smi', ['--query-gpu=name,memory.total,memory.free', '--format=csv,noheader,nounits'], {timeout: 3000}, (error, stdout) => {
        if (error) {
          // Not installed: never ask again. Installed but failing: ask again next time.
          if ((error as NodeJS.ErrnoException).code === 'ENOENT') this.gpuMissing = true
          return resolve(none)
        }

        const gpus = stdout
          .trim()
          .split('\n')
          .filter(Boolean)
          .map((line) => line.split(',').map((s) => s.trim()))
        if (gpus.length === 0) return resolve(none)
        resolve({
          type: `nvidia ${gpus[0][0]}${gpus.length > 1 ? ` x${gpus.length}` : ''}`,
          total: round(gpus.reduce((s, g) => s + Number(g[1] || 0), 0) / 1024),
          available: round(gpus.reduce((s, g) => s + Number(g[2] || 0), 0) / 1024),
        })
      })
    })
  }
}

function cpuTimes(): {busy: number; total: number} {
  let busy = 0
  let total = 0
  for (const cpu of os.cpus()) {
    const t = cpu.times
    const all = t.user + t.nice + t.sys + t.irq + t.idle
    total += all
    busy += all - t.idle
  }

  return {busy, total}
}

function memory(): {available: number; total: number} {
  const total = os.totalmem()
  try {
    const match = /^MemAvailable:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'))
    if (match) return {available: Number(match[1]) * 1024, total}
  } catch {
    // not Linux
  }

  return {available: os.freemem(), total}
}

function physicalCoreCount(): number {
  try {
    const info = fs.readFileSync('/proc/cpuinfo', 'utf8')
    const cores = new Set<string>()
    let physical = '0'
    for (const line of info.split('\n')) {
      const [key, value] = line.split(':').map((s) => s?.trim())
      if (key === 'physical id') physical = value
      if (key === 'core id') cores.add(`${physical}:${value}`)
    }

    if (cores.size > 0) return cores.size
  } catch {
    // not Linux
  }

  return os.cpus().length
}

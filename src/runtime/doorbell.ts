/**
 * How an idle claim loop sleeps: until someone rings (a notification, a freed
 * slot, a stop request) or the time is up. A ring while nobody waits is kept
 * for the next wait, so no wake-up is lost between two checks.
 */
export class Doorbell {
  private ringing?: () => void
  private rung = false

  wait(ms: number): Promise<void> {
    if (this.rung) {
      this.rung = false
      return Promise.resolve()
    }

    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        this.ringing = undefined
        this.rung = false
        resolve()
      }

      const timer = setTimeout(done, ms)
      this.ringing = done
    })
  }

  ring(): void {
    if (this.ringing) this.ringing()
    else this.rung = true
  }
}

// Mocha's spec reporter plus one closing line CI can read: "N passed, N failed".
const Mocha = require('mocha')

class Reporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options)
    runner.once('end', () => {
      const {passes, failures, pending} = runner.stats
      process.stdout.write(`\ntests: ${passes} passed, ${failures} failed${pending ? `, ${pending} skipped` : ''}\n`)
    })
  }
}

module.exports = Reporter

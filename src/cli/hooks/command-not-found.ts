import type {Hook} from '@oclif/core'

import {ExitCode} from '../../shared/exit-codes.js'
import {printable} from '../output.js'

/**
 * `rvx nosuch`: one line that says so and where the commands are listed,
 * exit 2 (bad input), and `{"error": ...}` on stdout under --json, like every
 * other error. oclif's own answer exits 1 and ignores --json.
 */
const hook: Hook<'command_not_found'> = async function ({argv, config, id}) {
  const words = id.split(':')
  // The longest leading part that is a topic ("runs" in "runs nosuch") is where to look for help.
  let topic = words.length - 1
  while (topic > 0 && !config.findTopic(words.slice(0, topic).join(':'))) topic--
  const where = ['rvx', ...words.slice(0, topic)].join(' ')
  const message = `${where} has no command "${words.slice(topic).join(' ')}": ${where} --help lists ${topic > 0 ? 'its' : 'the'} commands`
  if ((argv ?? []).includes('--json')) {
    process.stdout.write(`${JSON.stringify({error: {code: 'command_not_found', exitCode: ExitCode.Usage, message}}, null, 2)}\n`)
  } else {
    process.stderr.write(`Error: ${printable(message)}\n`)
  }

  this.exit(ExitCode.Usage)
}

export default hook

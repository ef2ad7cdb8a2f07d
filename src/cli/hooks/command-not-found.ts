import type {Hook, Interfaces} from '@oclif/core'
import levenshtein from 'fast-levenshtein'

import {ExitCode} from '../../shared/exit-codes.js'
import {printable} from '../output.js'

/**
 * `rvx nosuch`: one line that says so, the command it most likely meant
 * ("did you mean rvx runs list?" for `rvx runs lst`) and where the commands
 * are listed, exit 2 (bad input), and `{"error": ...}` on stdout under
 * --json, like every other error. oclif's own answer (and
 * @oclif/plugin-not-found's, which asks on a terminal) exits 1 or 127 and
 * ignores --json.
 */
const hook: Hook<'command_not_found'> = async function ({argv, config, id}) {
  const words = id.split(':')
  // The longest leading part that is a topic ("runs" in "runs nosuch") is where to look for help.
  let topic = words.length - 1
  while (topic > 0 && !config.findTopic(words.slice(0, topic).join(':'))) topic--
  const where = ['rvx', ...words.slice(0, topic)].join(' ')
  const guess = closestCommand(id, config)
  const message = `${where} has no command "${words.slice(topic).join(' ')}": ${guess ? `did you mean rvx ${guess}? ` : ''}${where} --help lists ${topic > 0 ? 'its' : 'the'} commands`
  if ((argv ?? []).includes('--json')) {
    process.stdout.write(`${JSON.stringify({error: {code: 'command_not_found', exitCode: ExitCode.Usage, message}}, null, 2)}\n`)
  } else {
    process.stderr.write(`Error: ${printable(message)}\n`)
  }

  this.exit(ExitCode.Usage)
}

/** The visible command nearest to what was typed (edit distance), if it is near enough to be a typo. */
function closestCommand(id: string, config: Interfaces.Config): string | undefined {
  // A command given with its arguments ("runs show 1x") is measured against the words it has.
  const typed = id.split(':')
  const near = config.commands
    .filter((c) => !c.hidden)
    .map((c) => {
      const attempt = typed.slice(0, c.id.split(':').length).join(':')
      return {id: c.id, words: c.id.split(':').length, distance: levenshtein.get(attempt, c.id)}
    })
    // Nearest first; of two as near, the one that accounts for more of what was typed ("workers stats": workers status, not worker).
    .sort((a, b) => a.distance - b.distance || b.words - a.words)[0]
  return near && near.distance <= Math.max(1, Math.floor(near.id.length / 4)) ? near.id.replaceAll(':', ' ') : undefined
}

export default hook

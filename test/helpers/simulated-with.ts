import {DEFAULT_SIMULATION, SimulatedProvider} from '../../src/agents/simulated.js'
import type {AgentAnswer, AgentRequest, CallContext, ResearchProvider} from '../../src/pipeline/provider.js'

/** An agent call a test answers instead of the world (it may ask the world itself: `sim`). */
export type Answer = (request: AgentRequest<any>, ctx: CallContext, sim: SimulatedProvider) => Promise<AgentAnswer<any>>

/** The simulated world, with the answers of some stages (by name) replaced. */
export function simulatedWith(overrides: Record<string, Answer> = {}, supply?: number): ResearchProvider {
  const sim = new SimulatedProvider({...DEFAULT_SIMULATION, ...(supply === undefined ? {} : {supply})})
  return {
    name: sim.name,
    simulated: true,
    checks: sim.checks,
    models: sim.models,
    identity: sim.identity,
    agent: (request, ctx) => (overrides[request.stage] ? overrides[request.stage](request, ctx, sim) : sim.agent(request, ctx)) as never,
  }
}

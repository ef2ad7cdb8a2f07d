import type {KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs, QueryResult, RootOperationNode, UnknownRow} from 'kysely'

/** Counts the queries sent through a Kysely instance (`db.withPlugin(counter)`), raw `sql` ones included. */
export class QueryCounter implements KyselyPlugin {
  count = 0

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    this.count++
    return args.node
  }

  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return args.result
  }
}

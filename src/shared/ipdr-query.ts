/**
 * The columns of an IPDR Query API result row, in Trisul's order
 * (docs/ipdr/api-ipdr-query.md, "Available Headers"). Shared by the gateway
 * (which selects `headers` itself) and the emulator (which makes the rows).
 */
export const QUERY_COLUMNS = [
  'Protocol',
  'SrcIP',
  'SrcPort',
  'DestIP',
  'DestPort',
  'StartTime',
  'EndTime',
  'Duration',
  'UserID',
  'SubscriberID',
  'NatIP',
  'NatPort',
  'DeviceIP',
] as const

// Owns which cluster instance this process is told it is: --instance, else BULWARK_INSTANCE. Kept
// apart from the config checks so that client commands can ask without loading the schema (zod).

/** The instance name from --instance, else BULWARK_INSTANCE. */
export function instanceName(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return flag ?? (env['BULWARK_INSTANCE'] || undefined);
}

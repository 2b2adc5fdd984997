// Owns the process exit code a command leaves behind (commands set it; main exits with it).
let code = 0;

export function setExitCode(c: number): void {
  code = c;
}

export function exitCode(): number {
  return code;
}

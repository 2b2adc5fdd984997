// Owns exclude patterns: shell-style globs (`*`, `**`, `?`, `[abc]`). A pattern without a slash
// matches a base name at any depth; one with a slash matches the whole absolute path (or, when it
// does not start with '/', any path suffix). Pure logic.

function toRegex(glob: string): string {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        i++;
        if (glob[i + 1] === '/') {
          i++;
          re += '(?:.*/)?';
        } else re += '.*';
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const j = glob.indexOf(']', i + 1);
      if (j < 0) re += '\\[';
      else {
        re += `[${glob.slice(i + 1, j).replace(/^!/, '^').replace(/\\/g, '\\\\')}]`;
        i = j;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return re;
}

export class ExcludeMatcher {
  readonly #base: RegExp[] = [];
  readonly #path: RegExp[] = [];

  constructor(patterns: readonly string[]) {
    for (const p of patterns) {
      const g = p.endsWith('/') && p.length > 1 ? p.slice(0, -1) : p;
      if (!g.includes('/')) this.#base.push(new RegExp(`^${toRegex(g)}$`));
      else if (g.startsWith('/')) this.#path.push(new RegExp(`^${toRegex(g)}(?:/.*)?$`));
      else this.#path.push(new RegExp(`(?:^|/)${toRegex(g)}(?:/.*)?$`));
    }
  }

  /** True when the absolute path (or its base name) matches an exclude. */
  excluded(absPath: string, name: string): boolean {
    for (const r of this.#base) if (r.test(name)) return true;
    for (const r of this.#path) if (r.test(absPath)) return true;
    return false;
  }
}

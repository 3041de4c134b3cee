/**
 * The docs stay navigable: README.md is short (a newcomer reads it to the end), and every relative link
 * in README.md and docs/*.md points to a file that exists and, for a Markdown target, to a heading that
 * exists (GitHub's anchor rules).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const ROOT = resolve(__dirname, '../../..');
const README_MAX_LINES = 200;


interface Link {
  file: string; // repository-relative path of the file holding the link
  line: number;
  target: string;
}

/** The lines of a Markdown file outside fenced code blocks (``` or ~~~), with their 1-based numbers. */
function proseLines(text: string): Array<{ n: number; text: string }> {
  const out: Array<{ n: number; text: string }> = [];
  let fence: string | undefined;
  text.split('\n').forEach((line, i) => {
    const m = /^\s*(```|~~~)/.exec(line);
    if (m) {
      if (fence === undefined) fence = m[1];
      else if (m[1] === fence) fence = undefined;
      return;
    }
    if (fence === undefined) out.push({ n: i + 1, text: line });
  });
  return out;
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to '-', repeats get -1, -2, ... */
export function anchorsOf(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const { text } of proseLines(markdown)) {
    const h = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(text);
    if (!h) continue;
    const plain = h[1]
      .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // links and images keep their text
      .replace(/<[^>]+>/g, ''); // inline HTML
    const base = plain
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  }
  return anchors;
}

/** Inline Markdown links `[text](target)` outside code, minus absolute URLs. */
export function relativeLinksOf(file: string, markdown: string): Link[] {
  const links: Link[] = [];
  for (const { n, text } of proseLines(markdown)) {
    const noCode = text.replace(/`[^`]*`/g, '');
    for (const m of noCode.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
      const target = m[1];
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // http:, https:, mailto:
      links.push({ file, line: n, target });
    }
  }
  return links;
}

function docFiles(): string[] {
  const docs = existsSync(join(ROOT, 'docs'))
    ? readdirSync(join(ROOT, 'docs'))
        .filter((f) => f.endsWith('.md'))
        .map((f) => `docs/${f}`)
    : [];
  return ['README.md', ...docs.sort()];
}

/** Every broken link, as "file:line: target (why)". */
function brokenLinks(files: string[]): string[] {
  const problems: string[] = [];
  const anchorCache = new Map<string, Set<string>>();
  const anchorsFor = (abs: string): Set<string> => {
    let a = anchorCache.get(abs);
    if (!a) {
      a = anchorsOf(readFileSync(abs, 'utf8'));
      anchorCache.set(abs, a);
    }
    return a;
  };
  for (const file of files) {
    const abs = join(ROOT, file);
    for (const link of relativeLinksOf(file, readFileSync(abs, 'utf8'))) {
      const [pathPart, anchor] = link.target.split('#', 2) as [string, string | undefined];
      const targetAbs = pathPart === '' ? abs : resolve(dirname(abs), decodeURIComponent(pathPart));
      const targetRel = relative(ROOT, targetAbs);
      const where = `${link.file}:${link.line}: ${link.target}`;
      if (targetRel.startsWith('..')) {
        problems.push(`${where} (points outside the repository)`);
        continue;
      }
      if (!existsSync(targetAbs)) {
        problems.push(`${where} (no such file: ${targetRel})`);
        continue;
      }
      if (anchor !== undefined && anchor !== '' && targetAbs.endsWith('.md') && !anchorsFor(targetAbs).has(anchor)) {
        problems.push(`${where} (no heading with anchor #${anchor} in ${targetRel})`);
      }
    }
  }
  return problems;
}

describe('docs', () => {
  test(`README.md has at most ${README_MAX_LINES} lines`, () => {
    const lines = readFileSync(join(ROOT, 'README.md'), 'utf8').replace(/\n$/, '').split('\n').length;
    expect(lines).toBeLessThanOrEqual(README_MAX_LINES);
  });

  test('README.md links to the topic pages in docs/', () => {
    const targets = relativeLinksOf('README.md', readFileSync(join(ROOT, 'README.md'), 'utf8')).map((l) => l.target.split('#')[0]);
    for (const page of docFiles().filter((f) => f !== 'README.md')) expect(targets).toContain(page);
  });

  test('every relative link in README.md and docs/*.md points to an existing file and heading', () => {
    expect(brokenLinks(docFiles())).toEqual([]);
  });

  test('the link checker itself finds a missing file and a missing anchor', () => {
    const md = '# Title\n\n## Access: open by default\n\n[a](README.md#title) [b](#access-open-by-default)\n[c](no/such.md) [d](#nope)\n```\n[e](in/code.md)\n```\n[f](https://example.org/x)\n';
    expect(anchorsOf(md)).toEqual(new Set(['title', 'access-open-by-default']));
    expect(relativeLinksOf('x.md', md).map((l) => l.target)).toEqual(['README.md#title', '#access-open-by-default', 'no/such.md', '#nope']);
    expect(anchorsOf('## A\n## A\n')).toEqual(new Set(['a', 'a-1']));
  });
});

import { envNames, yamlPath, type Setting, type SettingTable } from './load.ts';

function defaultText(s: Setting<unknown>): string {
  if (s.defaultText !== undefined) return s.defaultText;
  if (s.secret) return '';
  const shown = s.kind.show(s.default);
  return s.kind.metavar === 'STRING' && shown !== '' ? `"${shown}"` : shown;
}

function flagText(s: Setting<unknown>): string {
  const names = [s.flag, ...(s.aliases ?? [])].map((f) => `--${f}`).join(', ');
  return s.kind.metavar === '' ? names : `${names} ${s.kind.metavar}`;
}

/** `pgetcd --help`, produced from the settings table. */
export function usage(table: SettingTable): string {
  const lines = [
    'Usage: pgetcd [flags]',
    '',
    'An etcd v3 server whose state lives in PostgreSQL.',
    '',
    'Every flag may also be given as the environment variable PGETCD_<FLAG> (dashes as underscores),',
    "flags shared with etcd also as ETCD_<FLAG>, or as a key of --config-file (etcd's YAML format).",
    'Precedence: flags, environment, config file, defaults. Booleans: --flag, --flag=false, --no-flag.',
    '',
  ];
  for (const s of Object.values(table)) {
    const d = defaultText(s);
    lines.push(`  ${flagText(s)}`);
    lines.push(`      ${s.help}${d !== '' ? ` (default ${d})` : ''}`);
  }
  lines.push('  -h, --help', '      this text', '');
  return lines.join('\n');
}

function cell(t: string): string {
  return t.replace(/\|/g, '\\|');
}

/** The README's flags table (between the flags markers), produced from the settings table. */
export function markdownTable(table: SettingTable): string {
  const rows = [
    '| Flag | Environment | Config file key | Default | Meaning |',
    '| --- | --- | --- | --- | --- |',
  ];
  for (const s of Object.values(table)) {
    const flags = [s.flag, ...(s.aliases ?? [])].map((f) => `\`--${f}\``).join(', ');
    const env = envNames(s).map((e) => `\`${e}\``).join(', ');
    const d = defaultText(s);
    rows.push(`| ${flags} | ${env} | \`${yamlPath(s).join('.')}\` | ${d === '' ? '' : `\`${cell(d)}\``} | ${cell(s.help)} |`);
  }
  return rows.join('\n') + '\n';
}

export const README_BEGIN = '<!-- flags: produced from src/config.ts by `npm run readme-flags`; do not edit -->';
export const README_END = '<!-- end of flags -->';

/** README text with the flags table replaced by the current one. */
export function withFlagsTable(readme: string, table: SettingTable): string {
  const a = readme.indexOf(README_BEGIN);
  const b = readme.indexOf(README_END);
  if (a < 0 || b < a) throw new Error('README.md has no flags markers');
  return readme.slice(0, a + README_BEGIN.length) + '\n\n' + markdownTable(table) + '\n' + readme.slice(b);
}

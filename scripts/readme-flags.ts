/** `npm run readme-flags`: rewrites README.md's flags table from src/config.ts's SETTINGS. */
import fs from 'node:fs';
import { SETTINGS } from '../src/config.ts';
import { withFlagsTable } from '../src/config/docs.ts';

const readme = fs.readFileSync('README.md', 'utf8');
const next = withFlagsTable(readme, SETTINGS);
if (next !== readme) fs.writeFileSync('README.md', next);
console.log(next === readme ? 'README.md flags table is current' : 'README.md flags table rewritten');
